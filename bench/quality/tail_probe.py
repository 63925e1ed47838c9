"""`python -m bench.quality.tail_probe`: fine-tune only EfficientNet-Lite0's last blocks, at 300 px, with several seeds.

Fine-tuning is the one lever that moved single ELPV folds by +0.10 or more (head probe), but on
two CPU cores a whole-backbone fine-tune at ELPV's native 300 px costs hours per protocol, and one
seed swings a fold by ±0.12. While the first blocks stay frozen their output for an image never
changes, so this probe computes the output of Lite0's stem and `_blocks[:cut]` once per cell at
300 px (the product's builder and ImageNet weights; cached under --scratch) and in every fold
trains only the tail — `_blocks[cut:]`, the head convolution and a linear fail/pass head, starting
from ImageNet — on the fold's own training window, once per `--tune-seeds` seed. The recipe is
params.yaml `featurize.finetune` (epochs, AdamW one-cycle learning rate, class-weighted BCE,
flips and 90° turns), except: the symmetries act on the cached map at the cut (not the same as
the map of a flipped image), photometric jitter cannot act after the cut, and every epoch runs
(no early stopping). Windows under `finetune.min_rows` keep frozen features, as the product does.
Scores of the test block:

  frozen       LightGBM on the untouched tail's pooled features (the feature probe's lite0_300)
  head         the tuned heads' logit, mean over the seeds
  lightgbm     LightGBM on each seed's tuned pooled features, mean of the seeds' predictions
  frozen+head  mean of the ranks of `frozen` and `head` within the test block (no fitted weight)

For the time split it also reports the pipeline's forward operating point of `frozen`, `head` and
`lightgbm` (fold k's threshold from folds < k by params.yaml's `evaluate` rule), and LightGBM on
each seed's tuned features alone (what a product without a seed ensemble would ship).

Writes bench/results/tail-probe-<date>.{json,md} (or --stem).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import rankdata

from bench.quality import elpv
from bench.quality.cli import quality_parser
from bench.quality.feature_probe import (
    header,
    image_batches,
    lightgbm_fit,
    protocol_folds,
    summarise_unseen,
    to_markdown,
)
from bench.quality.protocols import parse_protocols
from bench.results_file import write_result
from defectflow import atomic
from defectflow.evaluation.forward import forward_points
from defectflow.evaluation.metrics import auc
from defectflow.features.backbones import build_backbone
from defectflow.features.extract import usable_cpus
from defectflow.features.finetune import optimisation, symmetries
from defectflow.features.imaging import normalize
from defectflow.params import EvaluateParams, FeaturizeParams, FinetuneParams, Params, TrainParams

NET, WEIGHTS, SIZE = "efficientnet_lite0", "IMAGENET1K_V1", 300
LITE0_BLOCKS = 16  # MBConv blocks in `_blocks`: cut 16 trains only the head convolution
# Scores whose values are thresholds a plant could ship (a rank within one test block is not).
FORWARD_SCORES = ("frozen", "head", "lightgbm")
SCORES = {
    "frozen": "LightGBM on the frozen pooled features",
    "head": "tuned linear head's logit, mean over seeds",
    "lightgbm": "LightGBM on the tuned pooled features, mean over seeds",
    "frozen+head": "mean rank of frozen LightGBM and the tuned head",
}


class LiteTail(torch.nn.Module):
    """EfficientNet-Lite0 from `_blocks[cut]` on: the remaining blocks (their stochastic depth as in
    the whole network), the head convolution, global average pooling, and a linear fail/pass head."""

    def __init__(self, model: torch.nn.Module, cut: int):
        super().__init__()
        self.cut, self.n_blocks = cut, len(model._blocks)
        self.blocks = torch.nn.ModuleList(model._blocks[cut:])
        self.conv_head, self.bn1, self.act = model._conv_head, model._bn1, model._swish
        self.drop_connect = model._global_params.drop_connect_rate or 0.0
        self.head = torch.nn.Linear(model._conv_head.out_channels, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks, start=self.cut):
            x = block(x, drop_connect_rate=self.drop_connect * i / self.n_blocks)
        return self.act(self.bn1(self.conv_head(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def prefix(model: torch.nn.Module, x: torch.Tensor, cuts: list[int]) -> dict[int, torch.Tensor]:
    """The activations entering `_blocks[cut]` for each cut, from one pass of the stem and blocks."""
    out, h = {}, model._swish(model._bn0(model._conv_stem(x)))
    for i, block in enumerate(model._blocks[:max(cuts)]):
        if i in cuts:
            out[i] = h
        h = block(h)
    out[max(cuts)] = h
    return out


def activations(cells: elpv.Cells, cuts: list[int], cache: Path,
                batch: int = 32) -> tuple[dict[int, np.ndarray], float]:
    """Cut → N×C×H×W float32 activations of every cell (cached as .npy), and the seconds they took."""
    paths = {c: cache / f"lite0-{SIZE}-cut{c}-{len(cells)}.npy" for c in cuts}
    timing = cache / f"lite0-{SIZE}-cuts{'-'.join(map(str, cuts))}-{len(cells)}-seconds.json"  # the pass's own time
    if all(p.is_file() for p in paths.values()) and timing.is_file():
        return {c: np.load(p) for c, p in paths.items()}, float(json.loads(timing.read_text())["seconds"])
    started = time.perf_counter()
    model, spec = build_backbone(NET, WEIGHTS, SIZE, 0)
    parts: dict[int, list[np.ndarray]] = {c: [] for c in cuts}
    with torch.inference_mode():
        for rgb in image_batches(cells, SIZE, batch, f"Lite0 prefix to blocks {cuts}"):
            for c, a in prefix(model, torch.from_numpy(normalize(rgb, spec.mean, spec.std)), cuts).items():
                parts[c].append(a.numpy())
    seconds = time.perf_counter() - started
    out = {c: np.concatenate(v) for c, v in parts.items()}
    cache.mkdir(parents=True, exist_ok=True)
    for c, a in out.items():
        with atomic.atomic_open(paths[c], "wb") as fh:
            np.save(fh, a)
    atomic.write_json(timing, {"seconds": seconds})
    return out, seconds


def fresh_tail(cut: int, seed: int) -> LiteTail:
    """A tail with Lite0's ImageNet weights and a head initialised from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _ = build_backbone(NET, WEIGHTS, SIZE, seed)
        return LiteTail(model, cut)


def tune_tail(acts: np.ndarray, y: np.ndarray, cut: int, ft: FinetuneParams, seed: int) -> LiteTail:
    """Train a fresh tail on (activations at the cut, labels) for `ft.epochs` epochs; eval mode."""
    tail = fresh_tail(cut, seed)
    x_all, y_all = torch.from_numpy(acts), torch.as_tensor(y, dtype=torch.float32)
    optimizer, schedule, loss_fn = optimisation(tail.parameters(), ft, y_all, torch.device("cpu"))
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # stochastic depth draws from the global generator
        tail.train()
        for _ in range(ft.epochs):
            for idx in torch.randperm(len(y_all), generator=gen).split(ft.batch_size):
                if len(idx) < 2:
                    continue  # BatchNorm cannot train on one image
                loss = loss_fn(tail(symmetries(x_all[idx].clone(), ft, gen)), y_all[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    return tail.eval()


@torch.inference_mode()
def embed(tail: LiteTail, acts: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(pooled features, head logits) of the cached activations, eval mode."""
    feats = [tail.features(torch.from_numpy(acts[i:i + batch])) for i in range(0, len(acts), batch)]
    pooled = torch.cat(feats)
    return pooled.numpy(), tail.head(pooled).squeeze(1).numpy()


def fold_predictions(acts: np.ndarray, frozen: np.ndarray, y: np.ndarray, fold, cut: int, ft: FinetuneParams,
                     seeds: list[int], fit) -> tuple[dict[str, np.ndarray], list[np.ndarray]]:
    """Each score's predictions for the fold's test block, given the frozen LightGBM's `frozen` there,
    and each seed's own LightGBM predictions (a window under min_rows: every score = frozen, no seeds)."""
    tr, te = fold.train_idx, fold.test_idx
    if len(tr) < ft.min_rows:
        return dict.fromkeys(SCORES, frozen), []
    heads, boosted = [], []
    for seed in seeds:
        tail = tune_tail(acts[tr], y[tr], cut, ft, seed)
        X, logit = embed(tail, acts[np.r_[tr, te]])
        heads.append(logit[len(tr):])
        boosted.append(fit(X[:len(tr)], y[tr])(X[len(tr):]))
    head = np.mean(heads, axis=0)
    return {"frozen": frozen, "head": head, "lightgbm": np.mean(boosted, axis=0),
            "frozen+head": (rankdata(frozen) + rankdata(head)) / 2}, boosted


def block_aucs(y: np.ndarray, folds, predictions: list[np.ndarray]) -> list[float]:
    return [round(auc(y[f.test_idx], p), 4) for f, p in zip(folds, predictions, strict=True)]


def forward(y: np.ndarray, folds, predictions: list[np.ndarray], ev: EvaluateParams) -> list[dict]:
    """The pipeline's forward operating point for one score over a protocol's folds: fold k's
    threshold chosen from folds < k by the shipped rule, and what it realizes on fold k."""
    oof = pd.DataFrame({"fold": np.concatenate([np.full(len(f.test_idx), k) for k, f in enumerate(folds, 1)]),
                        "y": np.concatenate([y[f.test_idx] for f in folds]), "p_fail": np.concatenate(predictions)})
    return forward_points(oof, ev.target_fail_recall, ev.threshold_method, ev.recall_margin, ev.recall_confidence)


def single_seeds(y: np.ndarray, folds: dict, predictions: dict, seeds: list[int]) -> list[dict]:
    """LightGBM on one seed's tuned features alone (what a product without a seed ensemble would
    ship): per seed, protocol → fold AUCs (the frozen predictions where the window was not tuned)."""
    out = []
    for i, seed in enumerate(seeds):
        alone = {name: [boosted[i] if boosted else scores["frozen"] for scores, boosted in v]
                 for name, v in predictions.items()}
        out.append({"seed": seed, "folds": summarise_unseen({n: block_aucs(y, folds[n], v) for n, v in alone.items()})})
    return out


def tuned_part(cut: int) -> str:
    """What a cut trains, in words."""
    last = LITE0_BLOCKS - 1
    blocks = "" if cut > last else (f"block {cut} and " if cut == last else f"blocks {cut}–{last} and ")
    return f"{blocks}the head convolution"


def main(argv: list[str] | None = None) -> int:
    p = quality_parser("bench.quality.tail_probe", __doc__, stem="tail-probe-<date>")
    p.add_argument("--cuts", default="16,15",
                   help=f"comma-separated Lite0 block indices (0–{LITE0_BLOCKS}) where training starts")
    p.add_argument("--tune-seeds", default="0,1,2", help="fine-tuning seeds per fold (their scores are averaged)")
    p.add_argument("--protocols", default="time,unseen", help="comma-separated: time, unseen, random")
    args = p.parse_args(argv)
    cuts = sorted({int(c) for c in args.cuts.split(",")}, reverse=True)
    tune_seeds = [int(s) for s in args.tune_seeds.split(",")]
    params = Params.load(args.params, args.overrides)
    train, ft = params.section("train", TrainParams), params.section("featurize", FeaturizeParams).finetune_params()
    ev = params.section("evaluate", EvaluateParams)
    torch.set_num_threads(usable_cpus())
    started = time.perf_counter()
    cells = elpv.materialize(args.scratch / "elpv", args.limit, args.module_size)
    y = (cells.labels == "fail").astype(np.int8)
    protocols = parse_protocols([x for x in args.protocols.split(",") if x], [int(s) for s in args.seeds.split(",")])
    folds = protocol_folds(cells, protocols, train, y)
    acts, prefix_s = activations(cells, cuts, args.scratch / "tail-probe")
    fit = lightgbm_fit(train, params.seed, 1280)
    # The untouched tail gives the same features at every cut: the frozen LightGBM is fitted once per fold.
    frozen_X = embed(fresh_tail(cuts[0], params.seed), acts[cuts[0]])[0]
    frozen = {name: [fit(frozen_X[f.train_idx], y[f.train_idx])(frozen_X[f.test_idx]) for f in fs]
              for name, fs in folds.items()}
    rows: list[dict] = []
    for cut in cuts:
        tuning = time.perf_counter()
        predictions = {name: [fold_predictions(acts[cut], frozen[name][k], y, f, cut, ft, tune_seeds, fit)
                              for k, f in enumerate(fs)] for name, fs in folds.items()}
        seconds = round(prefix_s + time.perf_counter() - tuning, 1)
        trained = tuned_part(cut)
        for score, what in SCORES.items():
            if score == "frozen" and rows:
                continue  # the frozen features do not depend on the cut: one row
            scored = {name: [p[score] for p, _ in v] for name, v in predictions.items()}
            row = {"name": "frozen" if score == "frozen" else f"cut{cut}_{score}",
                   "what": what if score == "frozen" else f"{trained} tuned; {what}",
                   "cut": cut, "score": score, "dim": 1280, "feature_s": seconds,
                   "folds": summarise_unseen({n: block_aucs(y, folds[n], v) for n, v in scored.items()})}
            if "time" in folds and score in FORWARD_SCORES:
                row["forward"] = forward(y, folds["time"], scored["time"], ev)
            if score == "lightgbm":
                row["single_seeds"] = single_seeds(y, folds, predictions, tune_seeds)
            rows.append(row)
            print(row["name"], {k: round(float(np.mean(v)), 3) for k, v in row["folds"].items()}, flush=True)
    result = {**header("tail_probe", args, cells, started), "tune_seeds": tune_seeds, "finetune": ft.__dict__,
              "evaluate": ev.__dict__, "prefix_s": round(prefix_s, 1), "protocols": rows[0]["folds"],
              "candidates": rows}
    title = "Fine-tuning only EfficientNet-Lite0's last blocks at 300 px on cached activations (ELPV)"
    markdown = to_markdown(result, title=title) + (
        f"\nTuning seeds per fold: {tune_seeds}; {ft.epochs} epochs, peak lr {ft.lr}, batch {ft.batch_size}, "
        f"windows under {ft.min_rows} rows keep the frozen features. Feature seconds: the prefix pass once plus "
        "every fold's tuning and LightGBM fits of that cut.\n") + forward_markdown(result) + seeds_markdown(result)
    write_result(args.out, args.stem or f"tail-probe-{result['date']}", result, markdown)
    print(markdown)
    return 0


def forward_markdown(result: dict) -> str:
    """The forward operating point of every score that has one (time split)."""
    rows = [r for r in result["candidates"] if r.get("forward")]
    if not rows:
        return ""
    ev = result["evaluate"]
    lines = ["", f"Forward operating point on the time split: fold k's threshold chosen from folds < k by the "
             f"shipped rule (`{ev['threshold_method']}`, target fail recall {ev['target_fail_recall']}, margin "
             f"{ev['recall_margin']}), measured on fold k.", "",
             "| candidate | fold | threshold | fail recall | review reduction | missed fails / fails |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        for f in r["forward"]:
            lines.append(f"| `{r['name']}` | {f['fold']} | {f['threshold']:.4f} | {f['fail_recall']:.3f} | "
                         f"{f['review_reduction']:.3f} | {f['missed_fails']} / {f['n_fail']} |")
    return "\n".join(lines) + "\n"


def seeds_markdown(result: dict) -> str:
    """LightGBM on each tuning seed's features alone, beside the seeds' mean."""
    lines = ["", "LightGBM on one seed's tuned features alone (what a product without a seed ensemble would "
             "ship), mean AUC:", ""]
    for r in result["candidates"]:
        for s in r.get("single_seeds", []):
            cells = "; ".join(f"{p} {np.mean(v):.3f}" + (" (" + " / ".join(f"{a:.3f}" for a in v) + ")"
                                                          if p == "time" else "") for p, v in s["folds"].items())
            lines.append(f"- `{r['name']}`, seed {s['seed']}: {cells}")
    return "\n".join(lines) + "\n" if len(lines) > 3 else ""


if __name__ == "__main__":
    sys.exit(main())
