"""Choose the anomaly head by measurement: method (patchcore | padim) × backbone layer.

One backbone pass over a synthetic demo (all candidate layers tapped at once); each head is
fitted on the `pass` images of the oldest 60 % (by capture time) and scored on the newest 40 %:
image AUROC of the anomaly score against the labels (no label is used for fitting).

    python -m bench.anomaly.choice --data DIR --workdir W [--sizes 160,224] [--out bench/results/anomaly-choice.json]

DIR is a `defectflow synth` folder and W its validated workdir (manifest.parquet).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.machine import describe

LAYERS = ("features.6", "features.10", "features.13", "features.16")
METHODS = ("patchcore", "padim")


def tapped_patches(sources: list[str], size: int) -> dict[str, np.ndarray]:
    from defectflow.anomaly.taps import PatchTap
    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor

    model, spec = build_backbone("mobilenet_v2", "IMAGENET1K_V1", size, 42)
    extractor = FeatureExtractor(model, spec, "cpu", 32, 0)
    taps = {layer: PatchTap(extractor.model, layer).__enter__() for layer in LAYERS}
    out: dict[str, list[np.ndarray]] = {layer: [] for layer in LAYERS}
    for _, feats in extractor.batches(sources):
        for layer, tap in taps.items():
            out[layer].append(tap.take(len(feats)))
    for tap in taps.values():
        tap.__exit__(None, None, None)
    return {layer: np.concatenate(parts).astype(np.float32) for layer, parts in out.items()}


def main(argv: list[str] | None = None) -> None:
    from defectflow.anomaly.maps import image_scores
    from defectflow.anomaly.models import fit_patch_model
    from defectflow.evaluation.metrics import auc as roc_auc

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--sizes", default="160,224")
    p.add_argument("--out", type=Path, default=Path("bench/results/anomaly-choice.json"))
    args = p.parse_args(argv)

    manifest = pd.read_parquet(args.workdir / "manifest.parquet")
    manifest = manifest[manifest["status"] == "ok"].sort_values("captured_at").reset_index(drop=True)
    y = (manifest["label"] == "fail").to_numpy()
    cut = int(0.6 * len(y))
    good, test = np.flatnonzero(~y[:cut]), np.arange(cut, len(y))
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        patches = tapped_patches([str(args.data / p) for p in manifest["path"]], size)
        for layer, P in patches.items():
            for method in METHODS:
                started = time.perf_counter()
                model = fit_patch_model(method, lambda P=P: iter([P[good]]), len(good), coreset_size=1000,
                                        max_candidates=20000, seed=0)
                auc = roc_auc(y[test], image_scores(model.patch_scores(P[test])))
                rows.append({"image_size": size, "layer": layer, "grid": int(round(P.shape[1] ** 0.5)),
                             "channels": int(P.shape[2]), "method": method, "image_auroc": round(float(auc), 4),
                             "fit_score_s": round(time.perf_counter() - started, 2)})
                print(rows[-1], flush=True)
    result = {"command": "python -m bench.anomaly.choice " + " ".join(sys.argv[1:] if argv is None else argv),
              "data": json.loads((args.data / ".defectflow-synth.json").read_text())["params"],
              "n_good_fit": int(len(good)), "n_test": int(len(test)), "n_test_fail": int(y[test].sum()),
              "machine": describe("cpu"), "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
