"""Build, smoke-test and push the scoring-service image with the Docker SDK.

`ship_model_image` is the one entry point (the CLI's `build-image` and the training flow's
container task call it): export the model to an edge bundle (or take one), gather a wheelhouse
on the host (for the image's Python), build the kind's Dockerfile (host networking, but every
install comes from the wheelhouse in the context, so the build fetches nothing), start the
container, probe /readyz and score one image, push to the registry, pull the image back by
digest, and record the digest on the MLflow model version.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from defectflow.errors import DefectflowError
from defectflow.inference.bundle_manifest import EdgeManifest
from defectflow.registry.names import digest_tag

if TYPE_CHECKING:
    import docker
    from docker.models.images import Image as DockerImage

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCKERFILE = REPO_ROOT / "infra" / "docker" / "Dockerfile"
SERVING_REQUIREMENTS = REPO_ROOT / "requirements" / "serving.in"
CONSTRAINTS = REPO_ROOT / "requirements" / "constraints.txt"
DEFAULT_CACHE = REPO_ROOT / ".cache"
BASE_FROM_DEBOOTSTRAP = "debootstrap"
CONTAINER_PORT_ENV = "DEFECTFLOW_PORT"
SMOKE_TIMEOUT_S = 90
# The interpreter and C library inside the image (Debian bookworm's python3, glibc 2.36): the
# wheelhouse is downloaded for them, not for whatever Python runs the build on the host.
IMAGE_PYTHON = "3.11"
IMAGE_GLIBC_MINOR = 36


class ImageBuildError(DefectflowError):
    """The image could not be built, failed its smoke test, or could not be pushed."""


@dataclass(frozen=True)
class ImageKind:
    """What one kind of image is made of: its Dockerfile and the requirements its wheelhouse holds."""

    dockerfile: Path
    requirements: Path


# service: the scoring API (infra/k8s deployment.yaml); batch: `defectflow score` + the dashboard
# (infra/k8s cronjob-scoring.yaml, dashboard-deployment.yaml). Both run the exported ONNX bundle.
KINDS = {
    "service": ImageKind(DOCKERFILE, SERVING_REQUIREMENTS),
    "batch": ImageKind(REPO_ROOT / "infra" / "docker" / "Dockerfile.batch", REPO_ROOT / "requirements" / "batch.in"),
}


@dataclass(frozen=True)
class ShippedImage:
    reference: str  # registry/repository:tag
    image_id: str
    size_bytes: int
    model_name: str
    model_version: str
    digest: str | None = None  # sha256:… of the pushed manifest
    pushed_reference: str | None = None  # registry/repository@digest
    smoke: dict[str, Any] | None = None
    seconds: dict[str, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ship_model_image(*, repository: str, model_uri: str | None = None, bundle_dir: Path | None = None,
                     tag: str | None = None, registry: str | None = None, push: bool = False,
                     docker_url: str | None = None, base_image: str = BASE_FROM_DEBOOTSTRAP,
                     cache_dir: Path = DEFAULT_CACHE, tracking_uri: str | None = None,
                     smoke_test: bool = True, kind: str = "service") -> ShippedImage:
    """Build (and smoke-test, and optionally push) the `kind` image (KINDS) for one model version.

    Give `model_uri` (models:/…; exported on the fly, and the pushed digest is recorded on that
    model version) or an already exported `bundle_dir`. The tag defaults to `v<model version>`.
    """
    import docker

    if (model_uri is None) == (bundle_dir is None):
        raise ImageBuildError("give exactly one of model_uri (models:/…) or bundle_dir (an exported bundle)")
    if push and not registry:
        raise ImageBuildError("--push needs --registry HOST:PORT (for example myregistry.azurecr.io)")
    if kind not in KINDS:
        raise ImageBuildError(f"unknown image kind {kind!r}; choose one of {', '.join(KINDS)}")
    timings: dict[str, float] = {}
    client = docker.DockerClient(base_url=docker_url, version="auto", timeout=900) if docker_url else docker.from_env(
        version="auto", timeout=900)
    with tempfile.TemporaryDirectory(prefix="defectflow-image-") as tmp:
        context = Path(tmp)
        started = time.perf_counter()
        bundle = _bundle(model_uri, bundle_dir, context / "bundle", tracking_uri)
        manifest = EdgeManifest.read(bundle)
        timings["export"] = time.perf_counter() - started
        started = time.perf_counter()
        _wheelhouse(context / "wheelhouse", cache_dir / "wheelhouse", KINDS[kind].requirements)
        base = _base_image(client, base_image, cache_dir)
        timings["prepare"] = time.perf_counter() - started
        name = f"{registry}/{repository}" if registry else repository
        reference = f"{name}:{tag or 'v' + manifest.model_version}"
        started = time.perf_counter()
        image = build_image(client, context, reference, base, manifest, KINDS[kind].dockerfile)
        timings["build"] = time.perf_counter() - started
    result = ShippedImage(reference=reference, image_id=image.id, size_bytes=int(image.attrs["Size"]),
                          model_name=manifest.model_name, model_version=manifest.model_version)
    if smoke_test:
        started = time.perf_counter()
        smoke = smoke_test_image if kind == "service" else smoke_test_batch_image
        result = _replace(result, smoke=smoke(client, reference))
        timings["smoke_test"] = time.perf_counter() - started
    if push:
        started = time.perf_counter()
        digest = push_image(client, reference)
        pushed = f"{name}@{digest}"
        verify_pull_by_digest(client, pushed, image.id)
        timings["push_and_pull"] = time.perf_counter() - started
        result = _replace(result, digest=digest, pushed_reference=pushed)
        if model_uri is not None:
            record_digest(manifest.model_name, manifest.model_version, pushed, tracking_uri, kind)
    client.close()
    return _replace(result, seconds={k: round(v, 2) for k, v in timings.items()})


def _replace(result: ShippedImage, **changes: Any) -> ShippedImage:
    return ShippedImage(**{**result.to_dict(), **changes})


def _bundle(model_uri: str | None, bundle_dir: Path | None, target: Path, tracking_uri: str | None) -> Path:
    if bundle_dir is not None:
        EdgeManifest.read(bundle_dir).verify(bundle_dir)
        shutil.copytree(bundle_dir, target)
        return target
    from defectflow.registry.export import export_bundle

    export_bundle(model_uri, target, tracking_uri=tracking_uri)
    return target


def _wheelhouse(target: Path, cache_root: Path, requirements: Path = SERVING_REQUIREMENTS) -> None:
    """Wheels of the image's runtime deps (cached, keyed by the pinned requirements) + defectflow itself."""
    target_args = image_target_args()
    key = hashlib.sha256(requirements.read_bytes() + CONSTRAINTS.read_bytes()
                         + " ".join(target_args).encode()).hexdigest()[:16]
    cached = cache_root / key
    if not cached.exists():
        staging = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=_mkdir(cache_root)))
        _pip("download", "--only-binary=:all:", *target_args, "-d", str(staging), "-c", str(CONSTRAINTS),
             "-r", str(requirements))
        staging.rename(cached)
    shutil.copytree(cached, target)
    with tempfile.TemporaryDirectory(prefix="defectflow-src-") as src:
        # Build from a copy: an in-tree build would leave build/ and egg-info in the checkout.
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(REPO_ROOT / name, Path(src) / name)
        shutil.copytree(REPO_ROOT / "src", Path(src) / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        _pip("wheel", "--no-deps", "--no-build-isolation", "-w", str(target), src)
    shutil.copy(requirements, target / "requirements.txt")


def image_target_args(machine: str | None = None) -> list[str]:
    """pip options selecting wheels for the image's CPython and glibc on this machine's architecture
    (the build runs natively, so the image has the host's architecture)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get((machine or platform.machine()).lower(),
                                                       (machine or platform.machine()).lower())
    platforms = [f"manylinux_2_{minor}_{arch}" for minor in range(IMAGE_GLIBC_MINOR, 16, -1)]
    platforms.append(f"manylinux2014_{arch}")  # pip adds manylinux2010 and manylinux1 for it
    return ["--python-version", IMAGE_PYTHON, "--implementation", "cp", "--abi", f"cp{IMAGE_PYTHON.replace('.', '')}",
            *(arg for p in platforms for arg in ("--platform", p))]


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"pip {args[0]} failed while preparing the wheelhouse:\n{done.stderr[-2000:]}")


def _base_image(client: docker.DockerClient, base_image: str, cache_dir: Path) -> str:
    if base_image != BASE_FROM_DEBOOTSTRAP:
        return base_image
    from defectflow.packaging.base_image import ensure_base_image

    return ensure_base_image(client, cache_dir / "docker-base")


def build_image(client: docker.DockerClient, context: Path, reference: str, base_image: str,
                manifest: EdgeManifest, dockerfile: Path = DOCKERFILE) -> DockerImage:
    """docker build of `dockerfile` in `context`. Host networking, because containers here have no
    other network; no step fetches anything: pip installs only from the context's wheelhouse."""
    import docker.errors

    shutil.copy(dockerfile, context / "Dockerfile")
    log.info("building %s from %s", reference, base_image)
    try:
        image, _ = client.images.build(
            path=str(context), tag=reference, rm=True, forcerm=True, network_mode="host", pull=False,
            buildargs={"BASE_IMAGE": base_image, "MODEL_NAME": manifest.model_name,
                       "MODEL_VERSION": manifest.model_version, "ONNX_SHA256": manifest.onnx_sha256},
        )
    except docker.errors.BuildError as exc:
        tail = "".join(str(c.get("stream", c.get("error", ""))) for c in exc.build_log)[-3000:]
        raise ImageBuildError(f"docker build of {reference} failed: {exc.msg}\n{tail}") from None
    image.reload()
    return image


def smoke_test_image(client: docker.DockerClient, reference: str, timeout_s: float = SMOKE_TIMEOUT_S) -> dict[str, Any]:
    """Run the image on a free loopback port, wait for /readyz and HEALTHCHECK, score one image."""
    import httpx

    port = _free_port()
    api_key = secrets.token_urlsafe(16)
    container = client.containers.run(
        reference, detach=True, network_mode="host",
        environment={"DEFECTFLOW_HOST": "127.0.0.1", CONTAINER_PORT_ENV: str(port), "DEFECTFLOW_API_KEY": api_key},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        ready = _wait(lambda: _readiness(f"{base}/readyz"), timeout_s)
        if not ready:
            raise ImageBuildError(f"{reference} did not become ready in {timeout_s:.0f}s; container log:\n"
                                  f"{_logs(container)}")
        ready_s = time.perf_counter() - started
        resp = httpx.post(f"{base}/v1/predict", headers={"X-API-Key": api_key},
                          files={"file": ("smoke.png", _sample_png(), "image/png")}, timeout=30)
        if resp.status_code != 200:
            raise ImageBuildError(f"{reference}: POST /v1/predict answered {resp.status_code}: {resp.text[:500]}")
        prediction = resp.json()
        healthy = _wait(lambda: _health(container) == "healthy", timeout_s)
        if not healthy:
            raise ImageBuildError(f"{reference}: HEALTHCHECK never reported healthy ({_health(container)})")
        user = container.attrs["Config"].get("User") or "root"
        return {"ready_s": round(ready_s, 2), "prediction": prediction, "health": "healthy", "user": user}
    finally:
        container.remove(force=True)


def smoke_test_batch_image(client: docker.DockerClient, reference: str,
                           timeout_s: float = SMOKE_TIMEOUT_S) -> dict[str, Any]:
    """Score one image with the baked-in bundle into a SQLite results file, then serve the
    dashboard on those results and check that it answers."""
    import httpx

    with tempfile.TemporaryDirectory(prefix="defectflow-batch-smoke-") as tmp:
        folder = Path(tmp)
        (folder / "images").mkdir()
        (folder / "images" / "smoke.png").write_bytes(_sample_png())
        for path in (folder, folder / "images"):
            path.chmod(0o777)  # the container runs as uid 10001
        volumes = {str(folder): {"bind": "/smoke", "mode": "rw"}}
        results = "sqlite:////smoke/results.db"
        try:
            out = client.containers.run(reference, ["score", "--input", "/smoke/images", "--model",
                                                    "/opt/defectflow/model", "--results", results, "--json"],
                                        network_mode="host", volumes=volumes, remove=True, stderr=True)
        except Exception as exc:  # ContainerError carries the container's stderr
            raise ImageBuildError(f"{reference}: `defectflow score` failed in the container: {exc}") from None
        scored = json.loads(out.decode()[out.decode().index("{"):])
        if scored.get("scored") != 1:
            raise ImageBuildError(f"{reference}: the container scored {scored.get('scored')} of 1 images")
        port = _free_port()
        container = client.containers.run(reference, ["dashboard", "--host", "127.0.0.1", "--port", str(port),
                                                      "--results", results], detach=True, network_mode="host",
                                          volumes=volumes)
        try:
            if not _wait(lambda: httpx.get(f"http://127.0.0.1:{port}/dashboard", timeout=5).status_code == 200,
                         timeout_s):
                raise ImageBuildError(f"{reference}: the dashboard never answered; log:\n{_logs(container)}")
        finally:
            container.remove(force=True)
    return {"scored": scored["scored"], "model_version": scored.get("model_version"), "dashboard": "200"}


def _readiness(url: str) -> bool:
    """True when ready; raises at once when the service reports that the model failed to load."""
    import httpx

    resp = httpx.get(url, timeout=2)
    if resp.status_code == 503 and resp.json().get("status") == "failed":
        raise ImageBuildError(f"the container could not load its model: {resp.json().get('detail')}")
    return resp.status_code == 200


def _health(container: Any) -> str:
    container.reload()
    return container.attrs["State"].get("Health", {}).get("Status", "none")


def _logs(container: Any) -> str:
    return container.logs(tail=60).decode(errors="replace")


def _wait(check: Any, timeout_s: float) -> bool:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except httpx.TransportError:  # connection refused while the server starts
            pass
        time.sleep(0.5)
    return False


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sample_png() -> bytes:
    """A small synthetic image: the smoke test checks the service scores, not what it says."""
    import numpy as np
    from PIL import Image

    ramp = np.linspace(0, 255, 96 * 96 * 3, dtype=np.float64).reshape(96, 96, 3).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    return buf.getvalue()


def push_image(client: docker.DockerClient, reference: str) -> str:
    """Push and return the manifest digest the registry reports."""
    repository, _, tag = reference.rpartition(":")
    digest = None
    for line in client.images.push(repository, tag=tag, stream=True, decode=True):
        if "error" in line:
            raise ImageBuildError(f"push of {reference} failed: {line.get('error')}")
        digest = line.get("aux", {}).get("Digest", digest)
    if not digest:
        raise ImageBuildError(f"push of {reference} finished without a digest from the registry")
    return digest


def verify_pull_by_digest(client: docker.DockerClient, pushed: str, image_id: str) -> None:
    """Pull `repo@sha256:…` and check it is the image that was built (same image id)."""
    pulled = client.images.pull(pushed)
    if pulled.id != image_id:
        raise ImageBuildError(f"pulled {pushed} as {pulled.id}, but the built image is {image_id}")


def record_digest(model_name: str, model_version: str, pushed: str, tracking_uri: str | None,
                  kind: str = "service") -> None:
    """Tag the model version with the pushed `kind` image (repo@sha256:…), so the registry says what
    ships it; each kind has its own tag (registry.names.digest_tag)."""
    from defectflow.registry.client import Registry

    Registry(tracking_uri).tag_version(model_name, model_version, {digest_tag(kind): pushed})
