"""`defectflow explain --model URI IMAGE... --out DIR`: where the model looks, as PNG overlays.

Per image: the fail probability, the decision with its reason (classifier | novel | normal),
the anomaly score and an overlay PNG of the anomaly map (DIR/<image stem>.png). --json prints
the same per image, with the overlay's path.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from defectflow.cli.common import emit, load_params
from defectflow.errors import ConfigError


def model_artifacts(uri: str, tracking_uri: str | None, into: Path) -> Path:
    """The folder holding a model's artifacts: a local folder as it is, or a registered model downloaded."""
    if not uri.startswith("models:/"):
        folder = Path(uri)
        if not folder.is_dir():
            raise ConfigError(f"--model {uri!r} is neither a models:/ URI nor a folder of model artifacts")
        return folder
    from defectflow.registry.client import Registry

    registry = Registry(tracking_uri)
    ref = registry.resolve(uri)  # the alias pinned to a version, with the registry's errors
    return registry.download_artifacts(ref, into) / "artifacts"


def output_names(images: list[Path]) -> list[str]:
    """One PNG name per image: its stem, made unique when two inputs share one."""
    names, seen = [], {}
    for path in images:
        stem = path.stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(f"{stem}.png" if seen[stem] == 1 else f"{stem}-{seen[stem]}.png")
    return names


def cmd_explain(args: argparse.Namespace) -> int:
    from defectflow import atomic
    from defectflow.anomaly.explain import Explainer
    from defectflow.anomaly.overlay import overlay_png
    from defectflow.params import RegisterParams

    missing = [str(p) for p in args.images if not p.is_file()]
    if missing:
        raise ConfigError(f"image(s) not found: {', '.join(missing)}")
    params = load_params(args)
    tracking_uri = args.tracking_uri or params.section("register", RegisterParams).tracking_uri
    with tempfile.TemporaryDirectory() as tmp:
        explainer = Explainer.from_artifacts(model_artifacts(args.model, tracking_uri, Path(tmp)))
    if explainer.head is None:
        raise ConfigError(f"model {args.model} was trained without the anomaly head (anomaly.enabled=false): "
                          "it has no maps to draw; retrain with anomaly.enabled=true")
    rows = []
    for path, name in zip(args.images, output_names(args.images), strict=True):
        (result,) = explainer.explain([str(path)])
        overlay = args.out / name
        atomic.write_bytes(overlay, overlay_png(result.pixels, result.anomaly_map, result.novelty_threshold))
        rows.append({**result.summary(), "overlay": str(overlay)})
    emit(args, {"model": args.model, "images": rows}, "\n".join(
        f"{r['image']}: {r['decision']} ({r['reason']}), p_fail {r['fail_probability']:.3f}, "
        f"anomaly {r['anomaly_score']:.2f} (novel above {r['novelty_threshold']:.2f}) → {r['overlay']}" for r in rows))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("explain", help="anomaly-map overlays and decision reasons for images",
                       description=__doc__.splitlines()[0].split(": ", 1)[1])
    p.add_argument("--model", required=True, help="models:/<name>@<alias>, models:/<name>/<version>, or a folder "
                                                  "with the model's artifacts")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--out", type=Path, required=True, help="folder for the overlay PNGs")
    p.add_argument("--tracking-uri",
                   help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, params register.tracking_uri)")
    p.add_argument("--params", type=Path, help="params file (default: ./params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--json", action="store_true", help="print per image: probability, decision, reason, score, overlay")
    p.set_defaults(func=cmd_explain)
