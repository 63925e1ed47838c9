"""Shipping the model: `defectflow export` (edge ONNX bundle), `serve` (scoring service),
`build-image` (container built, smoke-tested and pushed with the Docker SDK)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from defectflow.cli.common import add_run_args, emit, load_params, resolve_dirs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a registered model to one ONNX graph + manifest for edge machines",
                       description="Writes DIR/model.onnx (backbone + LightGBM trees + threshold in one graph; for a "
                                   "model trained with anomaly.as_feature the trees go to DIR/trees.onnx and the "
                                   "bundled head scores between them) and DIR/manifest.json (model version, input "
                                   "size, mean/std, threshold, sha256s). "
                                   "Scoring it needs only onnxruntime, numpy and Pillow (defectflow.inference.bundle).")
    add_run_args(p, data=False)
    p.add_argument("--model", required=True, help="models:/<name>@<alias> or models:/<name>/<version>")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to write (replaced if it is a bundle)")
    p.set_defaults(func=run_export)

    p = sub.add_parser("serve", help="run the scoring service (FastAPI + uvicorn) over an exported bundle",
                       description="Settings come from DEFECTFLOW_* environment variables (docs/serving.md); "
                                   "flags override them. The API key is read from DEFECTFLOW_API_KEY only.")
    p.add_argument("--bundle", type=Path, help="edge bundle folder (default $DEFECTFLOW_MODEL_DIR)")
    p.add_argument("--host", help="bind address (default $DEFECTFLOW_HOST, else 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default $DEFECTFLOW_PORT, else 8080)")
    p.add_argument("--no-auth", action="store_true",
                   help="serve predictions without an API key (trusted networks only)")
    p.add_argument("--write-openapi", type=Path, metavar="FILE", help="write the OpenAPI document to FILE and exit")
    p.set_defaults(func=run_serve)

    p = sub.add_parser("build-image", help="build, smoke-test and (optionally) push the scoring service image",
                       description="Exports the model, builds infra/docker/Dockerfile from a host-built wheelhouse "
                                   "(no network inside the build), runs the container and scores one image, then "
                                   "pushes, pulls back by digest and tags the MLflow model version with the digest.")
    add_run_args(p, data=False)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="models:/<name>@<alias> or models:/<name>/<version>")
    source.add_argument("--bundle", type=Path, help="an already exported bundle folder")
    p.add_argument("--tag", required=True, metavar="REPOSITORY[:TAG]",
                   help="image repository, e.g. defectflow-scoring; the tag defaults to v<model version>")
    p.add_argument("--registry", help="HOST[:PORT] of the registry, e.g. myacr.azurecr.io or 127.0.0.1:5001")
    p.add_argument("--push", action="store_true", help="push to --registry and pull back by digest")
    p.add_argument("--base-image", default="debootstrap",
                   help="FROM image with python3.11 + venv (default: make one with debootstrap, cached in .cache/)")
    p.add_argument("--docker-url", default=os.environ.get("DOCKER_HOST"), help="engine socket (default $DOCKER_HOST)")
    p.add_argument("--skip-smoke-test", action="store_true", help="do not start the container before pushing")
    p.add_argument("--kind", choices=("service", "batch"), default="service",
                   help="service: the scoring API (infra/docker/Dockerfile); batch: `score` + `dashboard` "
                        "(infra/docker/Dockerfile.batch, the image infra/k8s names defectflow-batch)")
    p.set_defaults(func=run_build_image)


def _tracking_uri(args: argparse.Namespace) -> str:
    """The registry the model comes from, after checking it answers (exit 7 at once, not after minutes)."""
    from defectflow.registry.client import Registry

    params = load_params(args)
    _, workdir = resolve_dirs(args, params)
    return Registry.from_params(params, workdir).reachable().tracking_uri


def run_export(args: argparse.Namespace) -> int:
    from defectflow.registry.export import export_bundle

    summary = export_bundle(args.model, args.out, tracking_uri=_tracking_uri(args))
    emit(args, summary, f"exported {summary['model_name']} v{summary['model_version']} to {args.out} "
                        f"(threshold {summary['threshold']:.4f}, sha256 {summary['onnx_sha256'][:12]}…, "
                        f"self-check max |Δp| {summary['parity_max_abs_diff']:.1e})")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    from defectflow.serving.settings import ServingSettings

    if args.write_openapi:
        from defectflow.serving.openapi import write_spec

        print(f"wrote {write_spec(args.write_openapi)}")
        return 0
    from defectflow.serving.__main__ import run

    run(ServingSettings.from_env(model_dir=args.bundle, host=args.host, port=args.port,
                                 auth_enabled=False if args.no_auth else None))
    return 0


def run_build_image(args: argparse.Namespace) -> int:
    from defectflow.packaging.image import ship_model_image

    repository, _, tag = args.tag.rpartition(":") if ":" in args.tag.rsplit("/", 1)[-1] else (args.tag, "", "")
    shipped = ship_model_image(
        repository=repository, tag=tag or None, model_uri=args.model, bundle_dir=args.bundle,
        registry=args.registry, push=args.push, docker_url=args.docker_url, base_image=args.base_image,
        tracking_uri=_tracking_uri(args) if args.model else None, smoke_test=not args.skip_smoke_test,
        kind=args.kind,
    )
    where = f", pushed as {shipped.pushed_reference}" if shipped.pushed_reference else ""
    emit(args, shipped.to_dict(), f"built {shipped.reference} ({shipped.size_bytes / 1e6:.0f} MB){where}")
    return 0
