"""Map quality on the synthetic demo: pixel AUROC and max-in-box share against defects.json,
next to a centre-biased and a random map.

The head (each method) is fitted on the `pass` images of the oldest 60 % of the workdir's
images and maps the newest 40 %; patch vectors come from the workdir's patch store, so run
`defectflow validate` and `defectflow featurize` on DIR first (same --set overrides).

    python -m bench.anomaly.maps --data DIR --workdir W [--set featurize.image_size=160] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd

from bench.machine import describe


def main(argv: list[str] | None = None) -> None:
    from defectflow.anomaly.maps import anomaly_maps
    from defectflow.anomaly.models import METHODS, fit_patch_model
    from defectflow.anomaly.quality import centre_maps, map_quality, random_maps
    from defectflow.anomaly.store import PatchStore
    from defectflow.anomaly.taps import resolve_layer
    from defectflow.params import AnomalyParams, Params
    from defectflow.synth.dataset import DEFECTS_FILE

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--workdir", type=Path, required=True)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--out", type=Path, default=Path("bench/results/anomaly-maps.json"))
    args = p.parse_args(argv)

    params = Params.load(None, args.overrides).section("anomaly", AnomalyParams)
    spec = json.loads((args.workdir / "features.json").read_text())["spec"]
    store = PatchStore(args.workdir / "feature_store", spec["featurizer_id"], resolve_layer(spec["name"], params.layer))
    manifest = pd.read_parquet(args.workdir / "manifest.parquet")
    manifest = manifest[manifest["status"] == "ok"].sort_values("captured_at").reset_index(drop=True)
    defects = json.loads((args.data / DEFECTS_FILE).read_text())
    y = (manifest["label"] == "fail").to_numpy()
    cut = int(0.6 * len(y))
    good, test = manifest["sha256"][:cut][~y[:cut]].tolist(), manifest.iloc[cut:]
    boxes = [defects["boxes"].get(path, {}).get("box") for path in test["path"]]
    size = spec["image_size"]
    test_patches = store.get_many(test["sha256"].tolist())

    results = {}
    for method in METHODS:
        model = fit_patch_model(method, lambda: store.chunks(good), len(good), coreset_size=params.coreset_size,
                                max_candidates=params.max_candidates, seed=0)
        maps = anomaly_maps(model.patch_scores(test_patches), size)
        results[method] = map_quality(maps, boxes, defects["image_size"])
        print(method, results[method], flush=True)
    results["centre_baseline"] = map_quality(centre_maps(len(test), size), boxes, defects["image_size"])
    results["random_baseline"] = map_quality(random_maps(len(test), size, seed=0), boxes, defects["image_size"])
    out = {"command": "python -m bench.anomaly.maps " + " ".join(sys.argv[1:] if argv is None else argv),
           "data": json.loads((args.data / ".defectflow-synth.json").read_text())["params"],
           "featurizer": {k: spec[k] for k in ("name", "image_size", "weights_id")}, "layer": store.layer,
           "n_good_fit": len(good), "n_mapped": int(len(test)), "machine": describe("cpu"), "results": results}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
