"""Write a synthetic dataset folder: PNG images in day/camera subfolders plus labels.csv.

Beside labels.csv, defects.json records the pixel box of every drawn defect (the ground truth
anomaly maps are scored against).

Crash safety: the previous labels.csv is removed first and the new one is written last (both
atomically, like every image), so a folder never has a labels.csv naming missing images.
A folder is only (re)written when it is empty or was written by this generator (marker
file), so pointing --out at real data cannot clobber it.
"""

from __future__ import annotations

import csv
import io
import zlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from defectflow.atomic import write_bytes, write_json, write_text
from defectflow.errors import ConfigError
from defectflow.synth.plan import ImageSpec, check_params, make_plan
from defectflow.synth.render import render_with_box

LABELS_FILE = "labels.csv"
DEFECTS_FILE = "defects.json"  # where each defect was drawn: {image: {"defect", "box": [x0, y0, x1, y1]}}
MARKER_FILE = ".defectflow-synth.json"
LABEL_COLUMNS = ("image", "label", "captured_at", "board_id", "camera_id", "defect")
# sensor noise defeats deflate's string matching: run-length strategy at level 1 is both the
# fastest and (here) the smallest of the settings tried
PNG_OPTIONS = {"compress_level": 1, "compress_type": zlib.Z_RLE}


def _claim_folder(out_dir: Path) -> None:
    """Refuse a non-empty folder this generator did not write; forget its previous labels.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.iterdir()) and not (out_dir / MARKER_FILE).exists():
        raise ConfigError(
            f"{out_dir} is not empty and was not written by `defectflow synth`; "
            "choose an empty or new folder so existing data is not overwritten"
        )
    (out_dir / LABELS_FILE).unlink(missing_ok=True)


def _remove_stale_images(out_dir: Path, keep: set[str]) -> None:
    """Drop PNGs of an earlier, larger run in the same (generator-owned) folder."""
    for path in out_dir.rglob("*.png"):
        if path.relative_to(out_dir).as_posix() not in keep:
            path.unlink()


def _labels_csv(specs: list[ImageSpec]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LABEL_COLUMNS)
    for s in specs:
        writer.writerow([s.image, s.label, s.captured_at.isoformat().replace("+00:00", "Z"),
                         s.board_id, s.camera_id, s.defect])
    return buf.getvalue()


def encode_png(pixels) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", **PNG_OPTIONS)
    return buf.getvalue()


def generate(out_dir: Path, n: int, seed: int, *, image_size: int = 160, days: float = 42,
             start: str = "2026-09-01", defect_rate: float = 0.3, label_noise: float = 0.01,
             drift_from: str | None = None, drift_kind: str = "lighting", unlabelled_share: float = 0.0,
             cameras: int = 3, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Render `n` labelled PCB close-ups into `out_dir`; the same arguments give the same bytes.

    `progress(k)` is called after each image with the number written so far.
    Returns a summary: counts per label, defect and camera, the time span and the folder.
    """
    out_dir = Path(out_dir)
    check_params(n, image_size, days, defect_rate, label_noise, drift_kind, unlabelled_share, cameras)
    specs = make_plan(n, seed, days=days, start=start, defect_rate=defect_rate, label_noise=label_noise,
                      drift_from=drift_from, drift_kind=drift_kind, unlabelled_share=unlabelled_share,
                      cameras=cameras)
    _claim_folder(out_dir)
    settings = dict(n=n, seed=seed, image_size=image_size, days=days, start=start, defect_rate=defect_rate,
                    label_noise=label_noise, drift_from=drift_from, drift_kind=drift_kind,
                    unlabelled_share=unlabelled_share, cameras=cameras)
    write_json(out_dir / MARKER_FILE, {"generator": "defectflow synth", "params": settings})

    boxes: dict[str, dict] = {}
    for done, spec in enumerate(specs, start=1):
        pixels, box = render_with_box(spec, seed, image_size, want_box=True)
        write_bytes(out_dir / spec.image, encode_png(pixels))
        if box is not None:
            boxes[spec.image] = {"defect": spec.defect, "box": box}
        if progress:
            progress(done)
    _remove_stale_images(out_dir, {s.image for s in specs})
    write_json(out_dir / DEFECTS_FILE, {"image_size": image_size, "boxes": boxes})
    write_text(out_dir / LABELS_FILE, _labels_csv(specs))

    return {
        "out_dir": str(out_dir),
        "n": len(specs),
        "labels": dict(Counter(s.label or "unlabelled" for s in specs)),
        "defects": dict(Counter(s.defect for s in specs if s.defect)),
        "cameras": dict(Counter(s.camera_id for s in specs)),
        "boards": len({s.board_id for s in specs}),
        "first_captured_at": specs[0].captured_at.isoformat(),
        "last_captured_at": specs[-1].captured_at.isoformat(),
        "params": settings,
    }
