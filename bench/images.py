"""Test images on disk: synthetic PCB close-ups (defectflow.synth) saved as JPEG and PNG.

Rendering is the slow part, so a few distinct scenes are rendered and the rest are unique
variants of them (shifted by a few pixels): every file has its own content hash, which the
incremental case relies on, at a fraction of the rendering cost.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DISTINCT_SCENES = 32
JPEG_QUALITY = 90  # what inspection cameras typically ship
SUFFIX = {"jpeg": ".jpg", "png": ".png"}


def _scenes(count: int, seed: int, size: int) -> list[np.ndarray]:
    from defectflow.synth.plan import make_plan
    from defectflow.synth.render import render_image

    specs = make_plan(count, seed, days=7, start="2026-09-01", defect_rate=0.3, label_noise=0.0,
                      drift_from=None, drift_kind="lighting", unlabelled_share=0.0, cameras=3)
    return [render_image(spec, seed, size) for spec in specs]


def _save(pixels: np.ndarray, path: Path, fmt: str) -> None:
    from defectflow.atomic import atomic_path

    with atomic_path(path, suffix=path.suffix) as tmp:
        img = Image.fromarray(pixels)
        if fmt == "jpeg":
            img.save(tmp, format="JPEG", quality=JPEG_QUALITY)
        else:
            img.save(tmp, format="PNG", compress_level=1)


class ImageSet:
    """Writes (once) and lists `n` images per format under `root`."""

    def __init__(self, root: Path, size: int, seed: int):
        self.root = Path(root)
        self.size = size
        self.seed = seed
        self._scene_cache: list[np.ndarray] | None = None

    def _scene(self, i: int) -> np.ndarray:
        if self._scene_cache is None:
            self._scene_cache = _scenes(DISTINCT_SCENES, self.seed, self.size)
        base = self._scene_cache[i % DISTINCT_SCENES]
        variant = i // DISTINCT_SCENES
        return base if variant == 0 else np.roll(base, shift=(variant, 2 * variant), axis=(0, 1))

    def paths(self, n: int, fmt: str, start: int = 0) -> list[str]:
        """Paths of images start..start+n-1 in `fmt` (jpeg | png), writing missing ones."""
        folder = self.root / f"{fmt}-{self.size}"
        out = []
        for i in range(start, start + n):
            path = folder / f"img{i:06d}{SUFFIX[fmt]}"
            if not path.exists():
                _save(self._scene(i), path, fmt)
            out.append(str(path))
        return out
