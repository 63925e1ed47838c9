"""Batched featurization with an ONNX engine: decoding runs in a thread pool, ahead of the model.

Pillow releases the GIL while it decodes and resizes, and ONNX Runtime / OpenVINO release it
while they compute, so plain threads overlap the next batch's decoding with this batch's model
run with no process start-up and no pickling of pixels. `lookahead` batches are decoded ahead;
memory stays bounded by (lookahead + 1) × batch_size resized images whatever the input size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from defectflow.features.backbones import BackboneSpec
from defectflow.features.imaging import ImageSource, load_uint8
from defectflow.inference.backends import Backend


class EngineExtractor:
    """The `FeatureExtractor` interface (batches, transform, forward_uint8) over any `Backend`."""

    def __init__(self, backend: Backend, spec: BackboneSpec, batch_size: int = 32, decode_threads: int = 2,
                 lookahead: int = 2):
        self.backend = backend
        self.spec = spec
        self.batch_size = batch_size
        self.decode_threads = max(1, decode_threads)
        self.lookahead = max(1, lookahead)

    @property
    def device_name(self) -> str:
        return f"cpu ({self.backend.name})"

    def forward_uint8(self, batch_nhwc) -> np.ndarray:
        """Features for a uint8 NHWC batch (numpy or a CPU torch tensor), already resized."""
        return self.backend(np.asarray(batch_nhwc, dtype=np.uint8))

    def _decode(self, source: ImageSource) -> np.ndarray:
        return load_uint8(source, self.spec.image_size)

    def batches(self, sources: Sequence[ImageSource]) -> Iterator[tuple[int, np.ndarray]]:
        """(start index, features) per batch, in order; decoding of later batches overlaps the model."""
        for start, batch in self._decoded(sources):
            yield start, self.backend(batch)

    def batch_outputs(self, sources: Sequence[ImageSource]) -> Iterator[tuple[int, list[np.ndarray]]]:
        """(start index, every graph output: features first, then the extra outputs) per batch, in order."""
        for start, batch in self._decoded(sources):
            yield start, self.backend.outputs(batch)

    def _decoded(self, sources: Sequence[ImageSource]) -> Iterator[tuple[int, np.ndarray]]:
        """(start index, resized uint8 batch) in order, with the next batches already decoding."""
        starts = range(0, len(sources), self.batch_size)
        with ThreadPoolExecutor(self.decode_threads, thread_name_prefix="decode") as pool:
            pending: deque[tuple[int, list[Future]]] = deque()
            next_start = iter(starts)

            def submit() -> None:
                start = next(next_start, None)
                if start is not None:
                    chunk = sources[start : start + self.batch_size]
                    pending.append((start, [pool.submit(self._decode, s) for s in chunk]))

            for _ in range(self.lookahead + 1):
                submit()
            while pending:
                start, futures = pending.popleft()
                batch = np.stack([f.result() for f in futures])
                submit()  # keep the decoders busy while the model runs
                yield start, batch

    def transform(self, sources: Sequence[ImageSource]) -> np.ndarray:
        """All features at once, (n, dim) float32."""
        out = np.empty((len(sources), self.spec.dim), dtype=np.float32)
        for start, feats in self.batches(sources):
            out[start : start + len(feats)] = feats
        return out
