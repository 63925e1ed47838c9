"""Fine-tune an ImageNet backbone on labelled images, so its features fit the product.

Frozen ImageNet features separate defects inside a module but carry poorly to new modules; a
few epochs of transfer learning (a linear fail/pass head on the pooled features, the whole
backbone trained) adapt them. The result is an ordinary full-model state dict (the original
ImageNet head kept, so `featurize.weights=<file>` and `build_backbone` load it as any other
weights file), content-addressed: its name is a hash of the recipe and of the (sha256,
label) set of the rows it was trained on, so a CV fold, the final model and a re-run each find
their own weights, and no fold can pick up weights trained on another fold's rows.

Training: images decoded once at the training size; augmentations suited to inspection
images (flips, 90° rotations, brightness/contrast gain, slight blur, sensor noise); class-
weighted BCE; AdamW with a one-cycle schedule; early stopping on the AUC of the newest
`val_fraction` of the rows (boards kept on one side), the best epoch's weights kept. CUDA
runs under bf16 autocast. Seeds fix initialisation, shuffling and augmentation.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from defectflow import atomic
from defectflow.errors import DefectflowError
from defectflow.evaluation.metrics import auc
from defectflow.features.backbones import backbone as backbone_entry
from defectflow.features.backbones import build_backbone, full_model
from defectflow.features.extract import select_device, usable_cpus
from defectflow.features.imaging import ImageSource, load_uint8
from defectflow.features.weights import resolve_weights
from defectflow.params import FinetuneParams

log = logging.getLogger(__name__)
# Bump when the training procedure changes: cached fine-tuned weights become stale.
RECIPE_VERSION = "finetune-v1"
# FinetuneParams fields that decide whether a window is fine-tuned, not how: not part of the weights' key.
NOT_RECIPE = ("min_rows",)


@dataclass(frozen=True)
class LabelledRows:
    """The images a backbone is fine-tuned on, with what early stopping needs to split them by time."""

    sha256: list[str]
    sources: list[ImageSource]
    y: np.ndarray  # 1 = fail
    captured_at: pd.Series
    board_id: pd.Series

    def __len__(self) -> int:
        return len(self.sha256)


def train_size(image_size: int, ft: FinetuneParams) -> int:
    return int(ft.image_size or image_size)


def weights_key(backbone: str, weights: str | None, image_size: int, ft: FinetuneParams, seed: int,
                rows: LabelledRows) -> str:
    """Hash of everything the fine-tuned weights depend on: recipe + the (sha256, label) set."""
    recipe = {"version": RECIPE_VERSION, "backbone": backbone,
              "base": resolve_weights(backbone, weights, seed).weights_id,
              "image_size": train_size(image_size, ft), "seed": seed,
              "finetune": {k: v for k, v in asdict(ft).items() if k not in NOT_RECIPE}}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    for item in sorted(f"{s}:{int(v)}" for s, v in zip(rows.sha256, rows.y, strict=True)):
        digest.update(item.encode() + b"\n")
    return digest.hexdigest()[:24]


def finetuned_weights(cache_dir: Path, backbone: str, weights: str | None, image_size: int, ft: FinetuneParams,
                      seed: int, rows: LabelledRows, device: str = "auto", progress: bool = True) -> Path:
    """The fine-tuned weights file for `rows` (trained now unless cached); a JSON record beside it."""
    key = weights_key(backbone, weights, image_size, ft, seed, rows)
    path = Path(cache_dir) / f"{backbone}-{key}.pth"
    if path.is_file():
        log.info("fine-tuned weights %s from cache", path.name)
        return path
    if len(np.unique(rows.y)) < 2:
        raise DefectflowError(f"fine-tuning needs pass and fail images; the {len(rows)} rows hold one class only")
    tuned = finetune(backbone, weights, image_size, ft, seed, rows, device, progress)
    with atomic.atomic_path(path, suffix=".pth") as tmp:
        torch.save(tuned.state, tmp)
    atomic.write_json(path.with_suffix(".json"), {"key": key, "n_rows": len(rows), "n_fail": int(rows.y.sum()),
                                                  "base_weights": weights, "finetune": asdict(ft), "seed": seed,
                                                  "history": tuned.history})
    return path


@dataclass(frozen=True)
class Finetuned:
    """What fine-tuning gives: a full torchvision state dict (the backbone trained, the original
    ImageNet head kept), the trained fail/pass head on the pooled features (`weight` 1×dim, `bias`),
    and one history record per epoch."""

    state: dict
    head: dict
    history: list[dict]


def finetune(backbone: str, weights: str | None, image_size: int, ft: FinetuneParams, seed: int,
             rows: LabelledRows, device: str = "auto", progress: bool = True) -> Finetuned:
    """Fine-tune `backbone` on `rows`; the best epoch's backbone and head (see `Finetuned`)."""
    from defectflow.training.splits import inner_validation_split

    size = train_size(image_size, ft)
    dev = select_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(usable_cpus())
    fit_pos, val_pos = inner_validation_split(rows.captured_at, rows.board_id, ft.val_fraction)
    if len(np.unique(rows.y[val_pos])) < 2 or len(np.unique(rows.y[fit_pos])) < 2:
        fit_pos, val_pos = np.arange(len(rows)), np.array([], dtype=int)  # no usable slice: all epochs, last kept
    pixels = decode_all(rows.sources, size)
    y = torch.as_tensor(rows.y, dtype=torch.float32)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, spec = build_backbone(backbone, weights, size, seed)
        head = torch.nn.Linear(spec.dim, 1)
    frozen = freeze_leading_blocks(model, ft.freeze_blocks)
    net = torch.nn.Sequential(model, head).to(dev, memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(seed)
    optimizer, schedule, loss_fn = optimisation(net.parameters(), ft, y[fit_pos], dev)
    norm = _Normalizer(spec.mean, spec.std, dev)

    history, best_auc, best_state, best_head, stale = [], -1.0, None, None, 0
    for epoch in range(1, ft.epochs + 1):
        net.train()
        frozen.eval()  # frozen blocks keep their ImageNet BatchNorm statistics too
        order = torch.as_tensor(fit_pos)[torch.randperm(len(fit_pos), generator=gen)]
        total = 0.0
        batches = [b for b in order.split(ft.batch_size) if len(b) > 1]  # BatchNorm cannot train on one image
        for idx in tqdm(batches, desc=f"fine-tune {backbone} epoch {epoch}/{ft.epochs}", unit="batch",
                        disable=not progress, leave=False):
            x = augment(pixels[idx].permute(0, 3, 1, 2).float().div_(255.0), ft, gen)
            with _autocast(dev):
                logits = net(norm(x.to(dev))).squeeze(1).float()
            loss = loss_fn(logits, y[idx].to(dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(idx)
        record = {"epoch": epoch, "train_loss": round(total / max(1, len(fit_pos)), 5)}
        if len(val_pos):
            record["val_auc"] = round(auc(rows.y[val_pos], predict(net, pixels[val_pos], norm, dev, ft.batch_size)), 5)
        history.append(record)
        log.info("fine-tune epoch %d: %s", epoch, record)
        score = record.get("val_auc", epoch)  # without a validation slice the last epoch wins
        if score > best_auc:
            best_auc, stale = score, 0
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            best_head = {k: v.detach().cpu().clone() for k, v in head.state_dict().items()}
        else:
            stale += 1
            if stale >= ft.patience:
                break
    return Finetuned(full_state(backbone, weights, seed, best_state, size), best_head, history)


def optimisation(parameters: Iterable[torch.nn.Parameter], ft: FinetuneParams, y_fit: torch.Tensor,
                 dev: torch.device) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.OneCycleLR,
                                             torch.nn.BCEWithLogitsLoss]:
    """The recipe's optimiser, schedule and loss for training on the labels `y_fit`: AdamW on the
    trainable parameters, a one-cycle schedule over `ft.epochs` epochs of `ft.batch_size` batches,
    BCE with pos_weight n_pass / n_fail when `ft.class_weighted`."""
    steps = ft.epochs * max(1, int(np.ceil(len(y_fit) / ft.batch_size)))
    optimizer = torch.optim.AdamW([p for p in parameters if p.requires_grad], lr=ft.lr,
                                  weight_decay=ft.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=ft.lr, total_steps=steps)
    n_fail = float(y_fit.sum())
    pos_weight = torch.tensor((len(y_fit) - n_fail) / n_fail if ft.class_weighted else 1.0, device=dev)
    return optimizer, schedule, torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)


def blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The backbone's blocks from input to output: MobileNetV2's `features`, ResNet's stem and
    layers, EfficientNet-Lite's stem, `_blocks` and head convolution (modules without weights skipped)."""
    out: list[torch.nn.Module] = []
    for name, child in model.named_children():
        if name == "features" or isinstance(child, torch.nn.ModuleList):
            out += list(child)
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


def full_state(backbone: str, weights: str | None, seed: int, headless: dict, image_size: int) -> dict:
    """The headless backbone's tensors in a full state dict of `backbone` (the base weights' head
    kept), so the file loads wherever a checkpoint for `backbone` does (`featurize.weights=<file>`)."""
    full = full_model(backbone, weights, image_size, seed)
    missing, unexpected = full.load_state_dict(headless, strict=False)
    head = backbone_entry(backbone).head
    if unexpected or any(not k.startswith(head + ".") for k in missing):
        raise DefectflowError(f"fine-tuned state does not fit {backbone}: missing {missing}, unexpected {unexpected}")
    return full.state_dict()


def decode_all(sources: Sequence[ImageSource], size: int) -> torch.Tensor:
    """N×size×size×3 uint8, decoded once (the epochs reuse it)."""
    with ThreadPoolExecutor(max_workers=max(1, usable_cpus())) as pool:
        arrays = list(pool.map(lambda s: load_uint8(s, size), sources))
    return torch.from_numpy(np.stack(arrays))


def augment(x: torch.Tensor, ft: FinetuneParams, gen: torch.Generator) -> torch.Tensor:
    """Random flips, 90° rotations, gain/contrast jitter, slight blur and noise on an NCHW [0, 1] batch."""
    from torchvision.transforms.functional import gaussian_blur

    n = x.shape[0]
    x = symmetries(x, ft, gen)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * ft.contrast
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * ft.brightness
    x = ((x - mean) * contrast + mean) * gain
    m = torch.rand(n, generator=gen) < ft.blur_p
    if m.any():
        x[m] = gaussian_blur(x[m], kernel_size=3, sigma=0.8)
    if ft.noise_std > 0:
        x = x + torch.randn(x.shape, generator=gen) * ft.noise_std
    return x.clamp_(0, 1)


def symmetries(x: torch.Tensor, ft: FinetuneParams, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal/vertical flips and 90° rotations (as `ft` allows) of an NCHW batch, in place."""
    n = x.shape[0]
    if ft.hflip:
        m = torch.rand(n, generator=gen) < 0.5
        x[m] = x[m].flip(-1)
    if ft.vflip:
        m = torch.rand(n, generator=gen) < 0.5
        x[m] = x[m].flip(-2)
    if ft.rot90 and x.shape[-1] == x.shape[-2]:
        k = torch.randint(0, 4, (n,), generator=gen)
        for turns in (1, 2, 3):
            m = k == turns
            x[m] = torch.rot90(x[m], turns, (-2, -1))
    return x


@torch.inference_mode()
def predict(net: torch.nn.Module, pixels: torch.Tensor, norm, dev: torch.device, batch_size: int) -> np.ndarray:
    """The head's fail logits for uint8 NHWC images (eval mode: BatchNorm running statistics)."""
    net.eval()
    out = []
    for chunk in pixels.split(batch_size):
        with _autocast(dev):
            out.append(net(norm(chunk.permute(0, 3, 1, 2).float().div_(255.0).to(dev))).squeeze(1).float().cpu())
    return torch.cat(out).numpy() if out else np.empty(0)


class _Normalizer:
    def __init__(self, mean, std, dev: torch.device):
        self.mean = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=dev).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def _autocast(dev: torch.device):
    import contextlib

    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()
