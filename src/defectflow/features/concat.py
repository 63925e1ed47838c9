"""Several backbones side by side: one module whose feature vector is their pooled vectors, concatenated.

`featurize.backbone: efficientnet_lite0+mobilenet_v2` names such a composite. On ELPV's cells
upsampled to 448 px the two backbones' features concatenated gave LightGBM 0.781 / 0.863 / 0.923
(time split / unseen modules / random) against 0.766 / 0.856 / 0.916 for EfficientNet-Lite0 alone
(`bench/results/shift-probe-2026-12-07-lite0-mnv2-448.md`): the networks see different things.

Each member was trained on its own input normalisation (Lite0: (x - 127) / 128, torchvision:
ImageNet mean/std). The composite takes its input normalised the way its first member expects —
so the extractor, the ONNX graph and the edge runtime treat it as any one backbone — and turns
that into each other member's normalisation inside `forward` (a per-channel affine map), which
keeps the exported graph a single graph.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Normalisation = tuple[tuple[float, float, float], tuple[float, float, float]]  # (mean, std) per channel


class ConcatenatedBackbones(torch.nn.Module):
    """Headless backbones run on the same batch; their pooled vectors concatenated in member order."""

    def __init__(self, members: Sequence[torch.nn.Module], normalisations: Sequence[Normalisation]):
        super().__init__()
        if len(members) != len(normalisations) or len(members) < 2:
            raise ValueError("a composite needs two or more members, each with its (mean, std)")
        self.members = torch.nn.ModuleList(members)
        (mean0, std0) = (torch.tensor(v).view(1, 3, 1, 1) for v in normalisations[0])
        for i, (mean, std) in enumerate(normalisations):
            m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
            # x0 = (p - mean0) / std0  →  xi = (p - m) / s = x0 · std0/s + (mean0 - m)/s
            self.register_buffer(f"scale{i}", std0 / s, persistent=False)
            self.register_buffer(f"shift{i}", (mean0 - m) / s, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([member(x * getattr(self, f"scale{i}") + getattr(self, f"shift{i}"))
                          for i, member in enumerate(self.members)], dim=1)
