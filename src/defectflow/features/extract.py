"""Run a headless backbone over many images, batch by batch, on CPU or GPU.

Decoding and resizing happen in DataLoader workers (overlapping the model's compute); the
uint8 batch travels to the device and is normalised there, in channels_last layout, under
`torch.inference_mode` (and bf16 autocast on CUDA).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from defectflow.features.backbones import BackboneSpec
from defectflow.features.imaging import ImageSource, load_uint8

log = logging.getLogger(__name__)


def select_device(requested: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; an explicit CUDA request without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"featurize.device={requested} but no CUDA GPU is visible; use auto or cpu")
    return device


class _Images(Dataset):
    def __init__(self, sources: Sequence[ImageSource], size: int):
        self.sources = sources
        self.size = size

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(load_uint8(self.sources[i], self.size))


@dataclass
class FeatureExtractor:
    """Turn images into feature vectors with a headless backbone.

    `batches(sources)` yields (start_index, features) so callers can persist each batch as it
    completes: an interrupted run loses at most one batch of work.
    """

    model: torch.nn.Module
    spec: BackboneSpec
    device: str = "auto"
    batch_size: int = 32
    num_workers: int = 2

    def __post_init__(self) -> None:
        self._device = select_device(self.device)
        if self._device.type == "cpu":
            torch.set_num_threads(os.cpu_count() or 1)
        self.model = self.model.to(self._device, memory_format=torch.channels_last).eval()
        self._mean = torch.tensor(self.spec.mean, device=self._device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.spec.std, device=self._device).view(1, 3, 1, 1)

    @property
    def device_name(self) -> str:
        return str(self._device)

    def _loader(self, sources: Sequence[ImageSource]) -> DataLoader:
        workers = min(self.num_workers, max(0, len(sources) // self.batch_size))
        return DataLoader(
            _Images(sources, self.spec.image_size),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=workers,
            pin_memory=self._device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    @torch.inference_mode()
    def forward_uint8(self, batch_nhwc: torch.Tensor) -> np.ndarray:
        """Features for a uint8 NHWC batch (already decoded and resized)."""
        x = batch_nhwc.to(self._device, non_blocking=True).permute(0, 3, 1, 2)  # NCHW view, channels_last strides
        x = (x.float().div_(255.0) - self._mean) / self._std
        x = x.contiguous(memory_format=torch.channels_last)
        if self._device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                out = self.model(x)
        else:
            out = self.model(x)
        return out.float().cpu().numpy()

    def batches(self, sources: Sequence[ImageSource]) -> Iterator[tuple[int, np.ndarray]]:
        start = 0
        for batch in self._loader(sources):
            feats = self.forward_uint8(batch)
            yield start, feats
            start += len(feats)

    def transform(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """All features at once, (n, dim) float32: for small inputs such as a scoring request."""
        out = np.empty((len(sources), self.spec.dim), dtype=np.float32)
        for start, feats in self.batches(sources):
            out[start : start + len(feats)] = feats
        return out
