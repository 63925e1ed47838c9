"""The benchmark's images in the data contract: ELPV (`elpv-dataset` on PyPI: 2,624 300 px EL
images of solar cells), or your own labelled data folder.

ELPV images are written once as PNGs. Each protocol's data folder gets hard links to the
images and its own labels.csv, so every protocol sees byte-identical images and the content-
addressed feature store computes each image's features once for all protocols.
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
    """The labelled images in capture (index) order: paths relative to `root`, labels, camera
    (ELPV: the cell type mono/poly), and the module (board) each belongs to as an integer code."""

    root: Path
    paths: list[str]
    labels: np.ndarray   # "pass" | "fail"
    types: np.ndarray    # camera_id
    modules: np.ndarray  # int board code, equal for the images of one board

    def __len__(self) -> int:
        return len(self.paths)


def materialize(root: Path, limit: int | None = None, module_size: int = 60) -> Cells:
    """Write ELPV's first `limit` cells (all when None) under root/images once; return them,
    `module_size` consecutive cells to a module (ELPV cells come module by module)."""
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
    return Cells(Path(root), paths, labels, np.asarray(types[:n]), np.arange(n) // module_size)


def uncertain(n: int) -> np.ndarray:
    """True for ELPV's first `n` cells whose annotators were unsure (defect probability 1/3 or 2/3)."""
    from elpv_dataset.utils import load_dataset

    probabilities = np.asarray(load_dataset()[1][:n], dtype=float)
    return (probabilities > 0) & (probabilities < 1)


def from_data_folder(data_dir: Path, limit: int | None = None) -> Cells:
    """Your own data folder (labels.csv of the data contract): the labelled rows in capture
    order; board_id groups them into modules (each image its own when the column is absent)."""
    import pandas as pd

    table = pd.read_csv(Path(data_dir) / "labels.csv", dtype=str)
    table = table[table["label"].isin(["pass", "fail"])]
    table = table.assign(_t=pd.to_datetime(table["captured_at"], utc=True)).sort_values(["_t", "image"], kind="stable")
    table = table.head(limit) if limit else table
    boards = table["board_id"].fillna(table["image"]) if "board_id" in table else table["image"]
    cameras = table["camera_id"].fillna("") if "camera_id" in table else pd.Series("", index=table.index)
    return Cells(Path(data_dir), list(table["image"]), table["label"].to_numpy(), cameras.to_numpy(),
                 pd.factorize(boards)[0])


def write_data_folder(cells: Cells, data_dir: Path, order: np.ndarray, boards: np.ndarray,
                      start: str = "2025-01-01T00:00:00+00:00") -> Path:
    """A data folder whose labels.csv lists cell `order[k]` as the k-th capture (one minute apart),
    on board `boards[order[k]]`, camera = cell type; images are hard links (copies where links fail)."""
    data_dir = Path(data_dir)
    for rel in cells.paths:
        target = data_dir / rel
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(cells.root / rel, target)
            except FileExistsError:
                pass  # another benchmark process linked the same file
            except OSError:
                shutil.copy2(cells.root / rel, target)
    t0 = np.datetime64(start.replace("+00:00", ""), "m")
    with atomic.atomic_open(data_dir / "labels.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["image", "label", "captured_at", "board_id", "camera_id"])
        for k, i in enumerate(order):
            writer.writerow([cells.paths[i], cells.labels[i], f"{t0 + k}:00+00:00", boards[i], cells.types[i]])
    return data_dir
