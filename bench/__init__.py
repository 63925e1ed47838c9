"""defectflow's benchmark suite: `python -m bench` (or `make bench`).

Every throughput case is reported as the median of several runs and as a ratio against the
naive baseline measured in the same run, on the same machine, so ratios stay meaningful when
the absolute numbers move with load. Importable with only torch, torchvision, numpy and Pillow
(the GPU machines have nothing else); cases that need more (LightGBM, ONNX Runtime) are
reported as skipped where their libraries are missing.
"""
