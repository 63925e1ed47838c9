"""What every case gets: the profile's settings, the device, the image set and a scratch folder."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.images import ImageSet


@dataclass
class Context:
    cfg: dict[str, Any]
    scratch: Path
    images: ImageSet
    progress: bool = True

    @property
    def device(self) -> str:
        return self.cfg["device"]

    @property
    def repeats(self) -> int:
        return int(self.cfg["repeats"])

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[bench] {message}", flush=True)

    def sync(self) -> None:
        """Wait for queued device work, so timers stop when the work is done."""
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()

    def extractor(self, backbone: str, variant: dict[str, Any] | None = None, image_size: int | None = None):
        """A fresh model (weights=none: same compute as the real weights) in a FeatureExtractor."""
        from defectflow.features.backbones import build_backbone
        from defectflow.features.extract import FeatureExtractor

        variant = variant or {}
        size = image_size or int(self.cfg["image_size"])
        model, spec = build_backbone(backbone, "none", size, int(self.cfg["seed"]))
        return FeatureExtractor(
            model, spec, device=self.device,
            batch_size=int(variant.get("batch_size", self.cfg["batch_size"])),
            num_workers=int(variant.get("workers", 0)),
            precision=variant.get("precision", "auto"),
            decode=variant.get("decode", "pil"),
            compile=bool(variant.get("compile", False)),
        )
