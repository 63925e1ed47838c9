"""Single-image latency of the scoring service on loopback: `python -m bench.service_latency`.

Builds an edge bundle at 224 px (MobileNetV2 with the real ImageNet weights if available, else a
seeded init, plus a LightGBM booster fitted on its features of synthetic board images), then for
each source tree given with --tree (label=path to a checkout's src folder; default: this one)
starts `python -m defectflow.serving` on a free loopback port and posts the same 512 px JPEGs one
at a time, `--requests` per tree, trees taking turns in rounds so machine load hits them alike.
Writes bench/results/service-latency-<date>.{json,md} with p50/p90/p99 per tree.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import machine

RESULTS = Path(__file__).with_name("results")
ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-latency-key"


def build_bundle(out: Path, images: list[bytes], size: int = 224) -> Path:
    """An edge bundle whose trees were fitted on the backbone's features of `images`."""
    from defectflow.errors import WeightsNotFoundError
    from defectflow.features.backbones import build_backbone
    from defectflow.features.extract import FeatureExtractor
    from defectflow.inference.bundle_export import OPSET, build_graph, write_bundle
    from defectflow.training.booster import fit_booster

    try:
        model, spec = build_backbone("mobilenet_v2", "IMAGENET1K_V1", size, 0)
    except WeightsNotFoundError:
        model, spec = build_backbone("mobilenet_v2", "none", size, 0)
    feats = FeatureExtractor(model, spec, device="cpu", batch_size=32, num_workers=0).transform(images)
    labels = (np.arange(len(images)) % 3 == 0).astype(int)
    booster = fit_booster(feats, labels, {"objective": "binary", "num_leaves": 7, "min_child_samples": 3,
                                          "n_estimators": 50}, 0)
    graph = build_graph(model, booster, booster.current_iteration(), size, spec.dim, 0.5)
    fields = dict(model_name="latency-bench", model_version="1", backbone=spec.name, feature_dim=spec.dim,
                  image_size=size, mean=list(spec.mean), std=list(spec.std), threshold=0.5, opset=OPSET,
                  featurizer_id=spec.featurizer_id)
    write_bundle(graph.SerializeToString(), fields, out)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """`python -m defectflow.serving` from one source tree, on loopback, until closed."""

    def __init__(self, src: Path, bundle: Path):
        self.port = _free_port()
        env = {**os.environ, "PYTHONPATH": f"{src}:{ROOT}", "DEFECTFLOW_MODEL_DIR": str(bundle),
               "DEFECTFLOW_PORT": str(self.port), "DEFECTFLOW_API_KEY": API_KEY}
        self.proc = subprocess.Popen([sys.executable, "-m", "defectflow.serving"], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, client, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if client.get(f"{self.url}/readyz").status_code == 200:
                    return
            except Exception:  # not listening yet
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the service on {self.url} did not become ready in {timeout_s} s")

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def measure(trees: dict[str, Path], bundle: Path, images: list[bytes], requests: int, rounds: int) -> dict:
    import httpx

    out: dict[str, list[float]] = {label: [] for label in trees}
    with httpx.Client(timeout=60) as client:
        services = {label: Service(src, bundle) for label, src in trees.items()}
        try:
            for svc in services.values():
                svc.wait_ready(client)
            for _ in range(rounds):
                for label, svc in services.items():
                    for i in range(requests // rounds + 3):  # 3 warm-up requests per turn, not kept
                        data = images[i % len(images)]
                        started = time.perf_counter()
                        r = client.post(f"{svc.url}/v1/predict", headers={"X-API-Key": API_KEY},
                                        files={"file": ("img.jpg", data, "image/jpeg")})
                        elapsed = time.perf_counter() - started
                        r.raise_for_status()
                        if i >= 3:
                            out[label].append(elapsed * 1e3)
        finally:
            for svc in services.values():
                svc.close()
    return {label: {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
                    "p99_ms": float(np.percentile(ms, 99)), "mean_ms": float(np.mean(ms))} for label, ms in out.items()}


def _jpegs(n: int) -> list[bytes]:
    from PIL import Image

    from bench.images import ImageSet

    with tempfile.TemporaryDirectory() as tmp:
        paths = ImageSet(Path(tmp), 512, 7).paths(n, "jpeg")
        blobs = [Path(p).read_bytes() for p in paths]
    for b in blobs:
        Image.open(io.BytesIO(b)).verify()
    return blobs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.service_latency", description=__doc__.splitlines()[0])
    p.add_argument("--tree", action="append", default=[], metavar="LABEL=SRC", help="a source tree's src folder")
    p.add_argument("--requests", type=int, default=200)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    trees = dict(t.split("=", 1) for t in args.tree) or {"this tree": str(ROOT / "src")}
    images = _jpegs(32)
    load_start = machine.load_average()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(Path(tmp) / "bundle", images)
        stats = measure({k: Path(v) for k, v in trees.items()}, bundle, images, args.requests, args.rounds)
    result = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine.describe("cpu"),
              "load_average_at_start": load_start, "load_average_at_end": machine.load_average(),
              "image": "512 px synthetic board JPEG, model input 224 px, MobileNetV2 + LightGBM edge bundle",
              "trees": trees, "latency": stats}
    lines = ["# Service single-image latency (POST /v1/predict, loopback, sequential)", "",
             f"{result['image']}; {result['created_at']}; "
             f"load average {load_start} → {result['load_average_at_end']}.", "",
             "| tree | requests | p50 ms | p90 ms | p99 ms | mean ms |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {k} | {v['requests']} | {v['p50_ms']:.1f} | {v['p90_ms']:.1f} | {v['p99_ms']:.1f} "
              f"| {v['mean_ms']:.1f} |" for k, v in stats.items()]
    stem = args.out / f"service-latency-{datetime.now(UTC):%Y-%m-%d}"
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
