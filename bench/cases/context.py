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
        """A fresh model (weights=none: same compute as the real weights) in the variant's engine:
        a torch `FeatureExtractor`, or the exported graph (`engine` onnxruntime|openvino, optionally
        `quantization: int8`, calibrated on the bench's own JPEGs) in an `EngineExtractor`."""
        from defectflow.features.backbones import build_backbone
        from defectflow.features.extract import FeatureExtractor

        variant = variant or {}
        size = image_size or int(self.cfg["image_size"])
        model, spec = build_backbone(backbone, "none", size, int(self.cfg["seed"]))
        batch_size = int(variant.get("batch_size", self.cfg["batch_size"]))
        workers = int(variant.get("workers", 0))
        engine = variant.get("engine", "torch")
        if engine != "torch":
            return self._graph_extractor(model, spec, engine, variant.get("quantization", "none"), batch_size, workers)
        return FeatureExtractor(
            model, spec, device=self.device, batch_size=batch_size, num_workers=workers,
            precision=variant.get("precision", "auto"),
            decode=variant.get("decode", "pil"),
            compile=bool(variant.get("compile", False)),
        )

    def _graph_extractor(self, model, spec, engine: str, quantization: str, batch_size: int, workers: int):
        from bench.cases.incremental import content_keys
        from defectflow.features.extract import usable_cpus
        from defectflow.inference.backends import graph_backend
        from defectflow.inference.export import cached_backbone_graph
        from defectflow.inference.pipeline import EngineExtractor
        from defectflow.inference.quantize import cached_int8_graph

        cache = self.scratch / "graphs"
        graph = cached_backbone_graph(spec, lambda: model, cache)
        if quantization == "int8":
            calibration = self.images.paths(int(self.cfg.get("calibration_images", 32)), "jpeg")
            graph, spec = cached_int8_graph(spec, graph, content_keys(calibration), calibration, cache)
        backend = graph_backend(engine, graph, usable_cpus())
        return EngineExtractor(backend, spec, batch_size, decode_threads=max(1, workers))
