"""A Debian base image with Python, made offline-friendly with debootstrap and `docker import`.

No base image can be pulled on machines without a registry mirror, so the service image starts
from one we make: `debootstrap --variant=minbase bookworm` plus python3 and python3-venv,
taken from the apt mirror the host already uses. The root filesystem tarball is cached under
a folder keyed by a hash of the recipe, so CI makes it once (about a minute) and later runs
only `docker import` it (seconds).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from defectflow.atomic import atomic_path
from defectflow.errors import DefectflowError

if TYPE_CHECKING:
    import docker

log = logging.getLogger(__name__)

APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"
# Documentation, man pages and apt caches are not needed to run a service; removing them
# makes the image about a third smaller.
PRUNED_PATHS = ("usr/share/doc", "usr/share/man", "usr/share/info", "var/cache/apt/archives",
                "var/lib/apt/lists")


class BaseImageError(DefectflowError):
    """The base image could not be made (debootstrap missing, mirror unreachable...)."""


@dataclass(frozen=True)
class BaseImageRecipe:
    """What goes into the base image; its hash names the cached tarball and the image tag."""

    suite: str = "bookworm"
    variant: str = "minbase"
    packages: tuple[str, ...] = ("python3", "python3-venv", "ca-certificates")
    repository: str = "defectflow-base"
    revision: int = 1  # bump when the way the rootfs is made changes

    def digest(self) -> str:
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    @property
    def tag(self) -> str:
        return f"{self.repository}:{self.suite}-{self.digest()}"


def host_apt_mirror(sources: Path = APT_SOURCES) -> str:
    """The first Debian mirror URI the host's apt uses (deb822 format), else deb.debian.org."""
    if sources.exists():
        match = re.search(r"^URIs:\s*(\S+)", sources.read_text(), flags=re.MULTILINE)
        if match:
            return match.group(1)
    return FALLBACK_MIRROR


def rootfs_tarball(recipe: BaseImageRecipe, cache_dir: Path, mirror: str | None = None) -> Path:
    """Return the cached rootfs tarball for `recipe`, running debootstrap first if it is missing."""
    tarball = Path(cache_dir) / f"{recipe.suite}-{recipe.digest()}.tar"
    if tarball.exists():
        return tarball
    if shutil.which("debootstrap") is None:
        raise BaseImageError("debootstrap is not installed: run `bash scripts/install-system-deps.sh` "
                             "(or pass --base-image with an image your engine can pull)")
    mirror = mirror or host_apt_mirror()
    with tempfile.TemporaryDirectory(prefix="defectflow-rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        argv = ["debootstrap", f"--variant={recipe.variant}", f"--include={','.join(recipe.packages)}",
                recipe.suite, str(rootfs), mirror]
        log.info("making base image rootfs: %s", " ".join(argv))
        done = subprocess.run(argv, capture_output=True, text=True)
        if done.returncode != 0:
            raise BaseImageError(f"debootstrap failed (exit {done.returncode}) with mirror {mirror}:\n"
                                 f"{(done.stdout + done.stderr)[-2000:]}")
        for rel in PRUNED_PATHS:
            target = rootfs / rel
            if target.is_dir():
                shutil.rmtree(target)
                target.mkdir()
        with atomic_path(tarball) as tmp_tar:
            subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tmp_tar), "."], check=True)
    return tarball


def ensure_base_image(client: docker.DockerClient, cache_dir: Path, recipe: BaseImageRecipe | None = None,
                      mirror: str | None = None) -> str:
    """Make sure the engine has the base image of `recipe`; return its tag."""
    import docker.errors

    recipe = recipe or BaseImageRecipe()
    try:
        client.images.get(recipe.tag)
        return recipe.tag
    except docker.errors.ImageNotFound:
        pass
    tarball = rootfs_tarball(recipe, cache_dir, mirror)
    repository, tag = recipe.tag.split(":")
    log.info("importing %s from %s", recipe.tag, tarball)
    client.api.import_image_from_file(str(tarball), repository=repository, tag=tag)
    client.images.get(recipe.tag)  # raises if the import did not produce the image
    return recipe.tag
