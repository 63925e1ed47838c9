"""The featurize pass with the anomaly head on, torch vs the ONNX engines, side by side in one run.

Each engine runs `anomaly.featurize.fill` (what the featurize stage runs: decode, backbone,
feature vectors and patch vectors into fresh stores) over the same demo images, end to end from
the PNG files; rounds alternate the engines so a change in machine load hits all of them alike,
and each engine's best round is reported with its ratio to torch. The exported graph (features
+ the tapped `patches-<layer>` output) is built before timing, as the graph cache would hold it.
The maps are compared too: a PaDiM head fitted on the torch pass's pass-image patches scores
every engine's patches; the figures are the largest map and score differences relative to torch.

    python -m bench.anomaly.engine [--n 240] [--size 224] [--rounds 3] [--out bench/results]

writes anomaly-engine-<date>.json and .md with the machine (bench/machine.py).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import machine
from bench.results_file import write_result

LAYER = "features.10"
ENGINES = ("torch", "onnxruntime", "openvino")


def _extractor(engine: str, model, spec, graph: Path, batch_size: int):
    from defectflow.features.extract import FeatureExtractor
    from defectflow.inference.engine import graph_extractor

    if engine == "torch":
        return FeatureExtractor(model, spec, "cpu", batch_size, 2)
    return graph_extractor(engine, graph, spec, "cpu", batch_size, 2)


def _one_pass(engine: str, extractor, spec, keys: list[str], paths: list[str], root: Path) -> tuple[float, np.ndarray]:
    """Seconds for the featurize pass into fresh stores under `root`, and the stored patch vectors."""
    from defectflow.anomaly.featurize import fill
    from defectflow.anomaly.store import PatchStore
    from defectflow.features.store import FeatureStore

    folder = Path(tempfile.mkdtemp(prefix=f"{engine}-", dir=root))
    features, patches = FeatureStore(folder, spec), PatchStore(folder, spec.featurizer_id, LAYER)
    start = time.perf_counter()
    fill(features, patches, keys, paths, extractor)
    return time.perf_counter() - start, patches.get_many(keys)


def run(n: int, size: int, rounds: int, batch_size: int) -> dict:
    from defectflow.anomaly.maps import anomaly_maps, image_scores
    from defectflow.anomaly.models import fit_patch_model
    from defectflow.anomaly.taps import graph_tap
    from defectflow.features.backbones import build_backbone
    from defectflow.hashing import sha256_file
    from defectflow.inference.backends import installed
    from defectflow.inference.export import cached_backbone_graph
    from defectflow.synth import generate

    engines = [e for e in ENGINES if e == "torch" or installed(e)]
    with tempfile.TemporaryDirectory(prefix="anomaly-engine-") as tmp:
        root = Path(tmp)
        generate(root / "data", n, seed=7, image_size=160)
        with open(root / "data" / "labels.csv") as fh:
            rows = list(csv.DictReader(fh))
        paths = [str(root / "data" / r["image"]) for r in rows]
        keys = [sha256_file(p) for p in paths]
        good = np.array([r["label"] == "pass" for r in rows])
        model, spec = build_backbone("mobilenet_v2", "IMAGENET1K_V1", size, 42)
        started = time.perf_counter()
        graph = cached_backbone_graph(spec, lambda: model, root / "graphs", [graph_tap(LAYER)])
        export_s = time.perf_counter() - started
        extractors = {e: _extractor(e, model, spec, graph, batch_size) for e in engines}
        seconds: dict[str, list[float]] = {e: [] for e in engines}
        patches: dict[str, np.ndarray] = {}
        for _ in range(rounds):
            for engine in engines:
                s, patches[engine] = _one_pass(engine, extractors[engine], spec, keys, paths, root)
                seconds[engine].append(s)
    ref = patches["torch"]
    head = fit_patch_model("padim", lambda: iter([ref[good]]), int(good.sum()), coreset_size=1000,
                           max_candidates=20000, seed=0)
    ref_scores = head.patch_scores(ref)
    ref_maps = anomaly_maps(ref_scores, size)
    best_torch = min(seconds["torch"])
    rows_out = []
    for engine in engines:
        scores = head.patch_scores(patches[engine])
        maps = anomaly_maps(scores, size)
        rows_out.append({
            "engine": engine, "images": n, "seconds": [round(s, 3) for s in seconds[engine]],
            "images_per_s": round(n / min(seconds[engine]), 1),
            "ratio_to_torch": round(best_torch / min(seconds[engine]), 2),
            "map_max_abs_diff_rel": float(np.abs(maps - ref_maps).max() / ref_maps.max()),
            "score_max_rel_diff": float((np.abs(image_scores(scores) - image_scores(ref_scores))
                                         / image_scores(ref_scores)).max()),
        })
    return {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine.describe("cpu"),
            "setup": {"backbone": "mobilenet_v2", "weights": "IMAGENET1K_V1", "image_size": size, "layer": LAYER,
                      "head": "padim", "demo": f"defectflow synth n={n} seed=7 160 px PNG", "batch_size": batch_size,
                      "decode_workers": 2, "rounds": rounds, "graph_export_s": round(export_s, 2)},
            "rows": rows_out}


def to_markdown(result: dict) -> str:
    s = result["setup"]
    lines = ["# Featurize pass with the anomaly head on: torch vs ONNX engines", "",
             f"{machine.summary_line(result['machine'])}; {result['created_at']}. {s['demo']}, {s['backbone']} "
             f"{s['weights']} at {s['image_size']} px, patch tap `{s['layer']}`, batch {s['batch_size']}, "
             f"{s['decode_workers']} decode workers; best of {s['rounds']} alternating rounds (features + patch "
             f"vectors stored, end to end from files). Graph export (once, cached): {s['graph_export_s']} s.", "",
             "| engine | img/s | × torch | rounds (s) | max map Δ / map max | max score Δ (rel) |",
             "|---|---:|---:|---|---:|---:|"]
    for r in result["rows"]:
        lines.append(f"| {r['engine']} | {r['images_per_s']} | {r['ratio_to_torch']} | "
                     f"{' / '.join(str(x) for x in r['seconds'])} | {r['map_max_abs_diff_rel']:.1e} | "
                     f"{r['score_max_rel_diff']:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.anomaly.engine", description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=240)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "results")
    args = p.parse_args(argv)
    result = run(args.n, args.size, args.rounds, args.batch_size)
    write_result(args.out, f"anomaly-engine-{datetime.now(UTC):%Y-%m-%d}", result, to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
