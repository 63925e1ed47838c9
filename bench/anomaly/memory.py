"""Peak memory of fitting the anomaly head on N and 10·N good images (each fit in a fresh process).

Patch maps are written to a real patch store (196 locations × 64 channels, float16: MobileNetV2
features.10 at 224 px), then each method is fitted from the store in chunks with the params.yaml
caps. Reported: the child's peak RSS, the fitted model's size, and what an uncapped memory bank
(every patch of every good image, as plain PatchCore keeps) would hold.

    python -m bench.anomaly.memory [--n 400] [--factor 10] [--out bench/results/anomaly-memory.json]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import describe

LOCATIONS, CHANNELS = 196, 64


def fill_store(root: Path, n: int):
    from defectflow.anomaly.store import PatchStore

    store = PatchStore(root, "bench", "features.10")
    rng = np.random.default_rng(0)
    base = rng.normal(size=(LOCATIONS, CHANNELS)).astype(np.float32)
    shas = [f"{i:064x}" for i in range(n)]
    for start in range(0, n, 256):
        block = base + 0.5 * rng.normal(size=(min(256, n - start), LOCATIONS, CHANNELS)).astype(np.float32)
        store.put_many(shas[start:start + len(block)], block)
    return store, shas


def child(root: str, n: int, method: str) -> None:
    from defectflow.anomaly.models import fit_patch_model
    from defectflow.anomaly.store import PatchStore
    from defectflow.params import AnomalyParams, Params

    params = Params.load(None).section("anomaly", AnomalyParams)
    store = PatchStore(root, "bench", "features.10")
    shas = [f"{i:064x}" for i in range(n)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    model = fit_patch_model(method, lambda: store.chunks(shas), n, coreset_size=params.coreset_size,
                            max_candidates=params.max_candidates, seed=0)
    print(json.dumps({"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "rss_before_fit_mib": round(before / 1024, 1), "fit_s": round(time.perf_counter() - started, 2),
                      "model_mib": round(model.nbytes / 2**20, 2)}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--factor", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("bench/results/anomaly-memory.json"))
    p.add_argument("--child", nargs=3, metavar=("ROOT", "N", "METHOD"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), args.child[2])
        return
    from defectflow.params import AnomalyParams, Params

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fill_store(Path(tmp), args.n * args.factor)
        for method in ("padim", "patchcore"):
            for n in (args.n, args.n * args.factor):
                proc = subprocess.run([sys.executable, "-m", "bench.anomaly.memory", "--child", tmp, str(n), method],
                                      capture_output=True, text=True, check=True)
                rows.append({"method": method, "n_good_images": n, **json.loads(proc.stdout.strip().splitlines()[-1]),
                             "uncapped_bank_mib": round(n * LOCATIONS * CHANNELS * 4 / 2**20, 1)})
                print(rows[-1], flush=True)
    params = Params.load(None).section("anomaly", AnomalyParams)
    out = {"command": "python -m bench.anomaly.memory " + " ".join(sys.argv[1:] if argv is None else argv),
           "patch_map": {"locations": LOCATIONS, "channels": CHANNELS, "dtype_on_disk": "float16"},
           "caps": {"coreset_size": params.coreset_size, "max_candidates": params.max_candidates},
           "machine": describe("cpu"), "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
