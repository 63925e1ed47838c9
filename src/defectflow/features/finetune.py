"""Fine-tune an ImageNet backbone on labelled images, so its features fit the product.

Frozen ImageNet features separate defects inside a module but carry poorly to new modules; a
few epochs of transfer learning (a linear fail/pass head on the pooled features, the whole
backbone trained) adapt them. The result is an ordinary full-model state dict (the original
ImageNet head kept, so `featurize.weights=<file>` and `build_backbone` load it as any other
weights file), content-addressed: its name is a hash of the recipe and of the (sha256,
label, captured_at, board) set of the rows it was trained on, so a CV fold, the final model and a re-run each find
their own weights, and no fold can pick up weights trained on another fold's rows.

Training: images decoded once at the training size; augmentations suited to inspection
images (flips, 90° rotations, brightness/contrast gain, slight blur, sensor noise); class-
weighted BCE; AdamW with a one-cycle schedule; early stopping on the AUC of the newest
`val_fraction` of the rows (boards kept on one side), the best epoch's weights kept. CUDA
runs under bf16 autocast. Seeds fix initialisation, shuffling, augmentation and dropout. With
`freeze_blocks` > 0 and `cache_frozen`, the frozen blocks' output is computed once per image and
the epochs train only the rest on it (defectflow.features.trunk; flips and 90° turns then act on
that output, and the photometric augmentations are left out).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from defectflow import atomic
from defectflow.errors import ConfigError, DefectflowError
from defectflow.evaluation.metrics import auc
from defectflow.features.backbones import backbone as backbone_entry
from defectflow.features.backbones import build_backbone, full_model
from defectflow.features.extract import select_device, usable_cpus
from defectflow.features.imaging import ImageSource, load_uint8
from defectflow.features.trunk import freeze_leading_blocks, from_prefix_output, prefix_outputs
from defectflow.features.weights import resolve_weights
from defectflow.params import FinetuneParams

log = logging.getLogger(__name__)
# Bump when the training procedure changes: cached fine-tuned weights become stale.
RECIPE_VERSION = "finetune-v3"  # v2: rows keyed by time and board too; v3: dropout draws seeded
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
    """Hash of everything the fine-tuned weights depend on: the recipe, and the set of rows trained on,
    each as (sha256, label, captured_at, board_id): the early-stopping slice is cut by time and board."""
    recipe = {"version": RECIPE_VERSION, "backbone": backbone,
              "base": resolve_weights(backbone, weights, seed).weights_id,
              "image_size": train_size(image_size, ft), "seed": seed,
              "finetune": {k: v for k, v in asdict(ft).items() if k not in NOT_RECIPE}}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode())
    times = pd.to_datetime(rows.captured_at, utc=True).map(pd.Timestamp.isoformat)
    items = zip(rows.sha256, rows.y, times, rows.board_id.astype(str), strict=True)
    for item in sorted(f"{s}:{int(v)}:{t}:{b}" for s, v, t, b in items):
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
    seeds = [seed + i for i in range(ft.average_seeds)]
    tuned = finetune_seeds(backbone, weights, image_size, ft, seeds, rows, device, progress)
    with atomic.atomic_path(path, suffix=".pth") as tmp:
        torch.save(average_states([t.state for t in tuned]), tmp)
    atomic.write_json(path.with_suffix(".json"), {"key": key, "n_rows": len(rows), "n_fail": int(rows.y.sum()),
                                                  "base_weights": weights, "finetune": asdict(ft), "seeds": seeds,
                                                  "history": [t.history for t in tuned]})
    return path


def average_states(states: list[dict]) -> dict:
    """The element-wise mean of state dicts of one architecture (a "model soup": networks fine-tuned
    from the same weights with different seeds, averaged into one). Tensors equal in every state
    (frozen blocks, integer counters) are kept exactly as they are."""
    if not states:
        raise DefectflowError("average_states needs at least one state dict")
    first = states[0]
    out = {}
    for k, v in first.items():
        same = all(torch.equal(s[k], v) for s in states[1:])
        out[k] = v if same or not v.is_floating_point() else torch.stack([s[k] for s in states]).mean(0)
    return out


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
    return finetune_seeds(backbone, weights, image_size, ft, [seed], rows, device, progress)[0]


def finetune_seeds(backbone: str, weights: str | None, image_size: int, ft: FinetuneParams, seeds: Sequence[int],
                   rows: LabelledRows, device: str = "auto", progress: bool = True) -> list[Finetuned]:
    """`finetune` once per seed, with the window decoded (and, with `cache_frozen`, the frozen blocks
    run) once for all of them: every seed starts from the same pretrained weights, so these inputs
    are the same for each, and only the training draws differ."""
    from defectflow.training.splits import inner_validation_split

    if len(seeds) > 1 and resolve_weights(backbone, weights, seeds[0]).path is None:
        raise ConfigError(f"featurize.finetune.average_seeds={len(seeds)} needs pretrained weights: with "
                          f"weights={weights!r} every seed starts from another random network, and their average "
                          "means nothing; set average_seeds: 1")
    size = train_size(image_size, ft)
    dev = select_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(usable_cpus())
    fit_pos, val_pos = np.arange(len(rows)), np.array([], dtype=int)  # no slice: every epoch, the last kept
    if ft.val_fraction > 0:
        fit, val = inner_validation_split(rows.captured_at, rows.board_id, ft.val_fraction)
        if len(np.unique(rows.y[val])) == 2 and len(np.unique(rows.y[fit])) == 2:
            fit_pos, val_pos = fit, val
    inputs = None
    tuned = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, spec = build_backbone(backbone, weights, size, seed)
            head = torch.nn.Linear(spec.dim, 1)
        run = _Run(backbone, model, head, ft, seed, dev, progress)  # on the device before the frozen blocks run
        if inputs is None:
            inputs = _Images(decode_all(rows.sources, size), _Normalizer(spec.mean, spec.std, dev), ft, dev)
            if ft.cache_frozen and ft.freeze_blocks > 0:
                inputs = _FrozenOutputs(model, ft.freeze_blocks, inputs)
        state, head_state, history = run.train(inputs, rows.y, fit_pos, val_pos)
        tuned.append(Finetuned(full_state(backbone, weights, seed, state, size), head_state, history))
    return tuned


class _Run:
    """One seed's training of a backbone and its fail/pass head on prepared inputs."""

    def __init__(self, backbone: str, model: torch.nn.Module, head: torch.nn.Linear, ft: FinetuneParams, seed: int,
                 dev: torch.device, progress: bool):
        self.backbone, self.model, self.head, self.ft, self.seed = backbone, model, head, ft, seed
        self.dev, self.progress = dev, progress
        self.frozen = freeze_leading_blocks(model, ft.freeze_blocks)
        self.net = torch.nn.Sequential(model, head).to(dev, memory_format=torch.channels_last)

    def train(self, inputs: _Images | _FrozenOutputs, labels: np.ndarray, fit_pos: np.ndarray,
              val_pos: np.ndarray) -> tuple[dict, dict, list[dict]]:
        """(the best epoch's headless backbone state, its head's state, one record per epoch)."""
        ft, net, dev = self.ft, self.net, self.dev
        y = torch.as_tensor(labels, dtype=torch.float32)
        gen = torch.Generator().manual_seed(self.seed)
        optimizer, schedule, loss_fn = optimisation(net.parameters(), ft, y[fit_pos], dev)
        history, best_auc, best, stale = [], -1.0, None, 0
        # Dropout and stochastic depth draw from torch's global generator: seed it here, inside a fork,
        # so a window's weights do not depend on what ran before it in the process.
        with inputs.running(self.model), torch.random.fork_rng(devices=_rng_devices(dev)):
            torch.manual_seed(self.seed)
            for epoch in range(1, ft.epochs + 1):
                net.train()
                self.frozen.eval()  # frozen blocks keep their ImageNet BatchNorm statistics too
                order = torch.as_tensor(fit_pos)[torch.randperm(len(fit_pos), generator=gen)]
                total = 0.0
                batches = [b for b in order.split(ft.batch_size) if len(b) > 1]  # BatchNorm cannot train on one image
                for idx in tqdm(batches, desc=f"fine-tune {self.backbone} seed {self.seed} epoch {epoch}/{ft.epochs}",
                                unit="batch", disable=not self.progress, leave=False):
                    with _autocast(dev):
                        logits = net(inputs.augmented(idx, gen)).squeeze(1).float()
                    loss = loss_fn(logits, y[idx].to(dev))
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += float(loss.detach()) * len(idx)
                record = {"epoch": epoch, "train_loss": round(total / max(1, len(fit_pos)), 5)}
                if len(val_pos):
                    record["val_auc"] = round(auc(labels[val_pos], predict(net, inputs.batches(val_pos), dev)), 5)
                history.append(record)
                log.info("fine-tune seed %d epoch %d: %s", self.seed, epoch, record)
                score = record.get("val_auc", epoch)  # without a validation slice the last epoch wins
                if score > best_auc:
                    best_auc, stale = score, 0
                    best = ({k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                            {k: v.detach().cpu().clone() for k, v in self.head.state_dict().items()})
                else:
                    stale += 1
                    if stale >= ft.patience:
                        break
        return (*best, history)


class _Images:
    """Training input from the decoded images (uint8 NHWC, decoded once): the recipe's whole
    augmentation (`augment`), normalised on the device."""

    def __init__(self, pixels: torch.Tensor, norm: _Normalizer, ft: FinetuneParams, dev: torch.device):
        self.pixels, self.norm, self.ft, self.dev = pixels, norm, ft, dev

    def augmented(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return self.norm(augment(_unit(self.pixels[idx]), self.ft, gen).to(self.dev))

    def batches(self, positions: np.ndarray | torch.Tensor) -> Iterator[torch.Tensor]:
        for chunk in torch.as_tensor(positions).split(self.ft.batch_size):
            yield self.norm(_unit(self.pixels[chunk]).to(self.dev))

    def running(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()


class _FrozenOutputs:
    """Training input from the frozen blocks' output, computed once per image
    (`featurize.finetune.cache_frozen`): each epoch runs only the trained blocks. Flips and 90°
    turns act on the cached maps; gain, contrast, blur and noise, which would have to act on the
    image before the frozen blocks, cannot."""

    def __init__(self, model: torch.nn.Module, n: int, images: _Images):
        log.info("fine-tuning on the output of the %d frozen blocks, computed once: flips and 90° turns act on "
                 "those maps, photometric jitter, blur and noise do not apply", n)
        self.n, self.ft = n, images.ft
        model.eval()
        self.outputs = prefix_outputs(model, n, images.batches(np.arange(len(images.pixels))))

    def augmented(self, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        return symmetries(self.outputs[idx.to(self.outputs.device)].clone(), self.ft, gen)

    def batches(self, positions: np.ndarray | torch.Tensor) -> Iterator[torch.Tensor]:
        for chunk in torch.as_tensor(positions).split(self.ft.batch_size):
            yield self.outputs[chunk.to(self.outputs.device)]

    def running(self, model: torch.nn.Module) -> contextlib.AbstractContextManager:
        return from_prefix_output(model, self.n)


def _unit(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC → float NCHW in [0, 1]."""
    return pixels.permute(0, 3, 1, 2).float().div_(255.0)


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
    contrast = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * ft.contrast
    gain = 1 + (torch.rand(n, 1, 1, 1, generator=gen) * 2 - 1) * ft.brightness
    if ft.contrast or ft.brightness:  # off: not even rounding noise (the draws above keep the random stream)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
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
def predict(net: torch.nn.Module, batches: Iterable[torch.Tensor], dev: torch.device) -> np.ndarray:
    """The head's fail logits for prepared input batches (eval mode: BatchNorm running statistics)."""
    net.eval()
    out = []
    for x in batches:
        with _autocast(dev):
            out.append(net(x).squeeze(1).float().cpu())
    return torch.cat(out).numpy() if out else np.empty(0)


class _Normalizer:
    def __init__(self, mean, std, dev: torch.device):
        self.mean = torch.tensor(mean, device=dev).view(1, 3, 1, 1)
        self.std = torch.tensor(std, device=dev).view(1, 3, 1, 1)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)


def _autocast(dev: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else contextlib.nullcontext()


def _rng_devices(dev: torch.device) -> list[int]:
    """The CUDA devices whose generators `fork_rng` must save and restore (none on CPU)."""
    return [dev.index if dev.index is not None else torch.cuda.current_device()] if dev.type == "cuda" else []
