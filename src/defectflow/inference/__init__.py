"""The inference core: image bytes → checked array → features → probability.

- `images`: the one upload/file check and decode (Pillow + numpy only);
- `export`: the headless backbone as an ONNX graph (uint8 NHWC in, features out), cached per
  featurizer spec; `quantize`: its INT8 (static QDQ) variant calibrated on training images;
- `backends`: interchangeable feature engines (torch, onnxruntime, openvino) behind one call;
- `engine`: which engine `featurize.engine: auto` picks, and building the extractor for it;
- `pipeline`: batched featurization with decoding in parallel threads, overlapping the model;
- the edge bundle (what edge machines, the serving container and batch scoring of a bundle run):
  `bundle_export` writes a trained model (backbone + trees + threshold) as one ONNX graph with its
  `bundle_manifest`, `bundle` scores it on the ONNX Runtime backend with numpy and Pillow only.
  `registry.export` resolves a registered model for `bundle_export` (the registry sits above).

Featurize, the pyfunc (`registry.pyfunc`), the edge bundle, batch scoring (`scoring.model`) and
the service (`serving.app`) all run their model through this package.

Everything that needs onnx/onnxruntime/openvino imports it inside the function that uses it:
the torch path (the GPU box has only torch, torchvision, numpy and Pillow) never needs them;
likewise torch, onnx and lightgbm are imported inside the exporters' functions, so `bundle` runs
in a container with onnxruntime, numpy and Pillow only.
"""
