"""The inference core: image bytes → checked array → features → probability.

- `images`: the one upload/file check and decode (Pillow + numpy only);
- `export`: the headless backbone as an ONNX graph (uint8 NHWC in, features out), cached per
  featurizer spec; `quantize`: its INT8 (static QDQ) variant calibrated on training images;
- `backends`: interchangeable feature engines (torch, onnxruntime, openvino) behind one call;
- `engine`: which engine `featurize.engine: auto` picks, and building the extractor for it;
- `pipeline`: batched featurization with decoding in parallel threads, overlapping the model.

Everything that needs onnx/onnxruntime/openvino imports it inside the function that uses it:
the torch path (the GPU box has only torch, torchvision, numpy and Pillow) never needs them.
"""
