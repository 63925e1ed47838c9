"""The container's wheelhouse is chosen for the image's interpreter, not the host's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from defectflow.packaging import image

pytestmark = pytest.mark.integration


def test_wheels_are_selected_for_the_image_python_whatever_the_host_runs(tmp_path, monkeypatch):
    """Ask for another CPython than the one running the test (3.12 from a 3.11 host here, the
    reverse elsewhere): the compiled wheel downloaded is for the asked-for interpreter."""
    other = "3.12" if sys.version_info[:2] != (3, 12) else "3.11"
    monkeypatch.setattr(image, "IMAGE_PYTHON", other)
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--only-binary=:all:", "--no-deps",
                           *image.image_target_args(), "-c", str(image.CONSTRAINTS), "-d", str(tmp_path), "numpy"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    [wheel] = [p.name for p in tmp_path.glob("numpy-*.whl")]
    tag = "cp" + other.replace(".", "")
    assert f"-{tag}-{tag}-manylinux" in wheel


def test_target_args_name_the_image_interpreter_and_glibc():
    args = image.image_target_args("amd64")
    assert args[:6] == ["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311"]
    platforms = args[7::2]
    assert platforms[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in platforms
    assert platforms[-1] == "manylinux2014_x86_64"
