"""Run a headless backbone over many images, batch by batch, on CPU or GPU.

Decoding and resizing happen in DataLoader workers (overlapping the model's compute); the
uint8 batch travels to the device (pinned memory, non-blocking copy on CUDA) and is
normalised there, in channels_last layout, under `torch.inference_mode` and, where the
precision asks for it, bf16/fp16 autocast. On CUDA one batch stays in flight while the
previous one's features come back, so the GPU is not idle during the device-to-host copy.

Optional, off by default: decoding JPEGs on the device with `torchvision.io.decode_jpeg`
(nvJPEG on CUDA; the workers then only read bytes) and `torch.compile`. All choices that
depend on the device are made once, in `plan_execution`, so they can be tested without a GPU.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from defectflow.errors import ConfigError
from defectflow.features.backbones import BackboneSpec
from defectflow.features.imaging import ImageSource, load_uint8

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DECODERS = ("pil", "device")
_JPEG_MAGIC = b"\xff\xd8\xff"


def select_device(requested: str = "auto") -> torch.device:
    """`auto` picks CUDA when present; an explicit CUDA request without a GPU is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(requested)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"featurize.device={requested} but no CUDA GPU is visible; use auto or cpu")
    return device


def usable_cpus() -> int:
    """Cores this process may run on (container CPU sets and taskset narrow os.cpu_count())."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass(frozen=True)
class ExecutionPlan:
    """How a batch is moved and computed on one device."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # None: plain fp32
    pin_memory: bool  # page-locked host batches: required for truly asynchronous copies
    non_blocking: bool
    intra_op_threads: int | None  # CPU only: one per usable core
    device_decode: bool  # JPEG bytes decoded by torchvision.io.decode_jpeg on `device`
    in_flight: int  # batches launched before the oldest result is collected


def plan_execution(device: torch.device, precision: str = "auto", decode: str = "pil",
                   cpu_count: int | None = None) -> ExecutionPlan:
    """Pick autocast dtype, memory pinning, threads and decoder for `device`.

    `auto` precision is bf16 on CUDA (the tensor cores' native format; no loss scaling needed
    for inference) and fp32 on CPU, where bf16 only pays on CPUs with AVX512-BF16/AMX and
    so is an explicit choice. fp16 is CUDA-only.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    if decode not in DECODERS:
        raise ConfigError(f"decode {decode!r} is not one of {', '.join(DECODERS)}")
    cuda = device.type == "cuda"
    if precision == "fp16" and not cuda:
        raise ConfigError("precision fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16,
             "auto": torch.bfloat16 if cuda else None}[precision]
    return ExecutionPlan(
        device=device,
        autocast_dtype=dtype,
        pin_memory=cuda,
        non_blocking=cuda,
        intra_op_threads=None if cuda else (cpu_count or usable_cpus()),
        device_decode=decode == "device",
        in_flight=2 if cuda else 1,
    )


def read_bytes(source: ImageSource) -> bytes:
    return bytes(source) if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()


class _Images(Dataset):
    """Decoded, resized HWC uint8 images (the PIL path of `imaging.load_uint8`)."""

    def __init__(self, sources: Sequence[ImageSource], size: int):
        self.sources = sources
        self.size = size

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(load_uint8(self.sources[i], self.size))


class _JpegBytesOrImages(_Images):
    """JPEGs as raw bytes (decoded later, on the device); anything else decoded here."""

    def __getitem__(self, i: int) -> tuple[str, torch.Tensor]:
        data = read_bytes(self.sources[i])
        if data.startswith(_JPEG_MAGIC):
            return "jpeg", torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return "pixels", torch.from_numpy(load_uint8(data, self.size))


def collate_mixed(items: list[tuple[str, torch.Tensor]]) -> dict:
    """Split a batch into JPEG byte strings and decoded images, remembering each one's slot."""
    jpeg = [(i, t) for i, (kind, t) in enumerate(items) if kind == "jpeg"]
    pixels = [(i, t) for i, (kind, t) in enumerate(items) if kind == "pixels"]
    return {
        "n": len(items),
        "jpeg_idx": torch.tensor([i for i, _ in jpeg], dtype=torch.long),
        "jpeg": [t for _, t in jpeg],
        "pixel_idx": torch.tensor([i for i, _ in pixels], dtype=torch.long),
        "pixels": torch.stack([t for _, t in pixels]) if pixels else torch.empty(0, dtype=torch.uint8),
    }


def resize_uint8(nchw: torch.Tensor, size: int) -> torch.Tensor:
    """NCHW uint8 → N×C×size×size uint8 with antialiased bilinear, as PIL's resize does."""
    if nchw.shape[-2:] == (size, size):
        return nchw
    x = torch.nn.functional.interpolate(nchw.float(), size=(size, size), mode="bilinear",
                                        antialias=True, align_corners=False)
    return x.round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class FeatureExtractor:
    """Turn images into feature vectors with a headless backbone.

    `batches(sources)` yields (start_index, features) so callers can persist each batch as it
    completes: an interrupted run loses at most a couple of batches of work.
    `precision` (auto|fp32|bf16|fp16), `decode` (pil|device) and `compile` are performance
    switches; see `plan_execution` and docs/performance.md for what each costs in accuracy.
    """

    model: torch.nn.Module
    spec: BackboneSpec
    device: str = "auto"
    batch_size: int = 32
    num_workers: int = 2
    precision: str = "auto"
    decode: str = "pil"
    compile: bool = False

    def __post_init__(self) -> None:
        self.plan = plan_execution(select_device(self.device), self.precision, self.decode)
        self._device = self.plan.device
        if self.plan.intra_op_threads:
            torch.set_num_threads(self.plan.intra_op_threads)
        self.model = self.model.to(self._device, memory_format=torch.channels_last).eval()
        if self.compile:
            self.model = torch.compile(self.model, dynamic=False)
        self._mean = torch.tensor(self.spec.mean, device=self._device).view(1, 3, 1, 1)
        self._std = torch.tensor(self.spec.std, device=self._device).view(1, 3, 1, 1)

    @property
    def device_name(self) -> str:
        return str(self._device)

    def _loader(self, sources: Sequence[ImageSource]) -> DataLoader:
        workers = min(self.num_workers, max(0, len(sources) // self.batch_size))
        dataset_cls, collate = (_JpegBytesOrImages, collate_mixed) if self.plan.device_decode else (_Images, None)
        return DataLoader(
            dataset_cls(sources, self.spec.image_size),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=self.plan.pin_memory,
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
            multiprocessing_context=_worker_start_method() if workers else None,
        )

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.to(self._device, non_blocking=self.plan.non_blocking)

    def _decode_on_device(self, batch: dict) -> torch.Tensor:
        """NHWC uint8 on the device from a `collate_mixed` batch (JPEGs decoded there, batched)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        size = self.spec.image_size
        out = torch.empty((batch["n"], size, size, 3), dtype=torch.uint8, device=self._device)
        if batch["jpeg"]:
            decoded = decode_jpeg(batch["jpeg"], mode=ImageReadMode.RGB, device=self._device)
            by_shape: dict[tuple[int, ...], list[int]] = {}
            for k, img in enumerate(decoded):
                by_shape.setdefault(tuple(img.shape), []).append(k)
            for ks in by_shape.values():  # one resize kernel per distinct input size
                group = torch.stack([decoded[k] for k in ks]).to(self._device)
                slots = batch["jpeg_idx"][ks].to(self._device)
                out[slots] = resize_uint8(group, size).permute(0, 2, 3, 1)
        if len(batch["pixel_idx"]):
            out[batch["pixel_idx"].to(self._device)] = self._to_device(batch["pixels"])
        return out

    def _launch(self, batch_nhwc: torch.Tensor) -> torch.Tensor:
        """Queue the model on a uint8 NHWC batch; returns device features (maybe not ready yet)."""
        x = self._to_device(batch_nhwc).permute(0, 3, 1, 2)  # NCHW view with channels_last strides
        x = (x.float().div_(255.0) - self._mean) / self._std
        x = x.contiguous(memory_format=torch.channels_last)
        if self.plan.autocast_dtype is None:
            return self.model(x)
        with torch.autocast(self._device.type, dtype=self.plan.autocast_dtype):
            return self.model(x)

    @staticmethod
    def _collect(out: torch.Tensor) -> np.ndarray:
        return out.float().cpu().numpy()

    @torch.inference_mode()
    def forward_uint8(self, batch_nhwc: torch.Tensor) -> np.ndarray:
        """Features for a uint8 NHWC batch (already decoded and resized)."""
        return self._collect(self._launch(batch_nhwc))

    @torch.inference_mode()
    def batches(self, sources: Sequence[ImageSource]) -> Iterator[tuple[int, np.ndarray]]:
        pending: list[tuple[int, torch.Tensor]] = []
        start = 0
        for batch in self._loader(sources):
            nhwc = self._decode_on_device(batch) if self.plan.device_decode else batch
            pending.append((start, self._launch(nhwc)))
            start += len(nhwc)
            if len(pending) >= self.plan.in_flight:
                first, out = pending.pop(0)
                yield first, self._collect(out)
        for first, out in pending:
            yield first, self._collect(out)

    def transform(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """All features at once, (n, dim) float32: for small inputs such as a scoring request."""
        out = np.empty((len(sources), self.spec.dim), dtype=np.float32)
        for start, feats in self.batches(sources):
            out[start : start + len(feats)] = feats
        return out


def _worker_start_method() -> str | None:
    """How DataLoader workers start: forked (the default, instant) unless OpenVINO runs in this
    process — forking it after its thread pool started segfaulted the parent (measured: `python -m
    bench --cases ab,c`, an OpenVINO end-to-end case then a torch loader with workers, 2 of 2 runs),
    so the workers then come from a clean forkserver process instead."""
    return "forkserver" if "openvino" in sys.modules else None
