"""A backbone as a chain of blocks: freezing the leading ones, and running the rest on their output.

While the first n blocks of a backbone are frozen (no gradients, eval-mode BatchNorm), what they
give for an image never changes. Fine-tuning can then compute it once per image and train only
the remaining blocks on it, instead of running the frozen part again in every epoch; for
EfficientNet-Lite0 at 300 px with its first 15 blocks frozen that halves a CPU fine-tune's time
(bench case f: 1.91×, docs/performance.md).

`prefix_outputs` computes what enters block n; inside `from_prefix_output`, calling the model on
such a tensor runs only block n onwards. Both work through hooks on the blocks `blocks` lists, so
they hold for every backbone in the registry, whatever its own `forward` does between blocks
(ResNet's ReLU and max pooling, EfficientNet-Lite's swish and per-block drop-connect rates).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch

from defectflow.errors import DefectflowError


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The backbone's blocks from input to output: MobileNetV2's `features`, ResNet's stem and
    layers, EfficientNet-Lite's stem, `_blocks` and head convolution (modules without weights skipped)."""
    out: list[torch.nn.Module] = []
    for name, child in model.named_children():
        if name == "features" or isinstance(child, torch.nn.ModuleList):
            out += list(child.children())
        elif any(True for _ in child.parameters()):
            out.append(child)
    return out


def freeze_leading_blocks(model: torch.nn.Module, n: int) -> torch.nn.Sequential:
    """Stop gradients into the first `n` blocks (fewer weights to fit on a small window, and a
    cheaper backward pass); returns them, so training can keep them in eval mode."""
    trunk = blocks(model)
    if not 0 <= n < len(trunk):
        raise DefectflowError(f"featurize.finetune.freeze_blocks={n}: the backbone has {len(trunk)} blocks; "
                              f"choose 0 (train all) to {len(trunk) - 1}")
    for block in trunk[:n]:
        block.requires_grad_(False)
    return torch.nn.Sequential(*trunk[:n])


class _CutReached(Exception):
    """Raised at block n's input: nothing after the cut is needed for the prefix's output."""


@torch.inference_mode()
def prefix_outputs(model: torch.nn.Module, n: int, batches: Iterable[torch.Tensor]) -> torch.Tensor:
    """What enters block `n` (the first trained block) for every input batch, concatenated: the
    frozen blocks' output after any weight-free operation the backbone applies before block n.
    The model should be in eval mode, so the frozen BatchNorms use their running statistics."""
    captured: list[torch.Tensor] = []

    def capture(_module: torch.nn.Module, args: tuple) -> None:
        captured.append(args[0])
        raise _CutReached

    handle = _block(model, n).register_forward_pre_hook(capture)
    try:
        for x in batches:
            try:
                model(x)
            except _CutReached:
                pass
    finally:
        handle.remove()
    if not captured:
        raise DefectflowError("prefix_outputs got no input batches")
    return torch.cat(captured)


@contextmanager
def from_prefix_output(model: torch.nn.Module, n: int) -> Iterator[None]:
    """Inside, `model(a)` takes `a` from `prefix_outputs(model, n, …)` and computes only block `n`
    onwards (training or eval): the first n blocks pass their input through, and block n receives
    `a` itself, so a weight-free operation between the blocks (applied to `a` on the way) is undone."""
    trunk, given = blocks(model), {}

    def remember(_module: torch.nn.Module, args: tuple) -> None:
        given["input"] = args[0]

    def substitute(_module: torch.nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return (given.pop("input"), *args[1:]), kwargs

    skipped = trunk[:n]
    handles = [model.register_forward_pre_hook(remember),
               _block(model, n).register_forward_pre_hook(substitute, with_kwargs=True)]
    for block in skipped:
        block.forward = _pass_through  # an instance attribute shadows the class's forward
    try:
        yield
    finally:
        for block in skipped:
            del block.forward
        for handle in handles:
            handle.remove()


def _pass_through(x: torch.Tensor, *_args, **_kwargs) -> torch.Tensor:
    return x


def _block(model: torch.nn.Module, n: int) -> torch.nn.Module:
    trunk = blocks(model)
    if not 0 < n < len(trunk):
        raise DefectflowError(f"a cut at block {n}: the backbone has {len(trunk)} blocks; choose 1 to {len(trunk) - 1}")
    return trunk[n]
