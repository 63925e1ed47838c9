"""The embedded demo dataset: synthetic close-ups of circuit-board components.

`generate(out_dir, n, seed, **synth params)` renders PNGs and a labels.csv (image, label,
captured_at, board_id, camera_id, defect) spread over weeks, with realistic nuisance variation
(cameras, lighting, board finishes, neighbouring parts), assembly defects of varying
subtlety, a small rate of label noise, and optional lighting or camera drift from a date.
Only numpy and Pillow are needed.
"""

from defectflow.synth.dataset import LABELS_FILE, generate

__all__ = ["LABELS_FILE", "generate"]
