"""ELPV (`elpv-dataset` on PyPI: 2,624 300 px EL images of solar cells) in the data contract.

Images are written once as PNGs; each protocol's data folder gets hard links to them and its
own labels.csv, so every protocol sees byte-identical images and the content-addressed feature
store computes each image's features once for all protocols.
"""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from defectflow import atomic

FAIL_PROBABILITY = 0.5  # the dataset's defect probability at or above which a cell is a fail
IMAGE_DIR = "images"


@dataclass(frozen=True)
class Cells:
    """The dataset in index order: relative image paths, labels, cell types (the camera)."""

    paths: list[str]
    labels: np.ndarray  # "pass" | "fail"
    types: np.ndarray   # "mono" | "poly"

    def __len__(self) -> int:
        return len(self.paths)


def materialize(root: Path, limit: int | None = None) -> Cells:
    """Write ELPV's first `limit` cells (all when None) under root/images once; return them."""
    from elpv_dataset.utils import load_dataset

    images, probabilities, types = load_dataset()
    n = len(images) if limit is None else min(limit, len(images))
    out = Path(root) / IMAGE_DIR
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in tqdm(range(n), desc="ELPV → PNG", unit="img", disable=None):
        rel = f"{IMAGE_DIR}/cell_{i:04d}.png"
        target = Path(root) / rel
        if not target.exists():
            with atomic.atomic_path(target, suffix=".png") as tmp:
                Image.fromarray(np.asarray(images[i], dtype=np.uint8)).save(tmp, format="PNG")
        paths.append(rel)
    labels = np.where(probabilities[:n] >= FAIL_PROBABILITY, "fail", "pass")
    return Cells(paths, labels, np.asarray(types[:n]))


def write_data_folder(cells: Cells, source_root: Path, data_dir: Path, order: np.ndarray, boards: np.ndarray,
                      start: str = "2025-01-01T00:00:00+00:00") -> Path:
    """A data folder whose labels.csv lists cell `order[k]` as the k-th capture (one minute apart),
    on board `boards[order[k]]`, camera = cell type; images are hard links (copies where links fail)."""
    data_dir = Path(data_dir)
    (data_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for rel in cells.paths:
        target = data_dir / rel
        if not target.exists():
            try:
                os.link(source_root / rel, target)
            except FileExistsError:
                pass  # another benchmark process linked the same file
            except OSError:
                shutil.copy2(source_root / rel, target)
    t0 = np.datetime64(start.replace("+00:00", ""), "m")
    with atomic.atomic_open(data_dir / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label", "captured_at", "board_id", "camera_id"])
        for k, i in enumerate(order):
            writer.writerow([cells.paths[i], cells.labels[i], f"{t0 + k}:00+00:00", boards[i], cells.types[i]])
    return data_dir
