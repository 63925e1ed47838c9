"""Edge bundle: export a registered model to one ONNX graph, and score it with onnxruntime, numpy and Pillow only."""
