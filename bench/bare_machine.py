"""Do the README's commands work on a bare Debian 12? `python -m bench.bare_machine` (root; ~10 min, 2 cores).

Makes a Debian 12 minbase root filesystem with debootstrap from the host's apt mirror (plus git, which a user
needed to clone the repo: no python3-venv, Node.js, PostgreSQL, make or CA certificates), imports it into a
throwaway Docker engine (the test suite's own, tests/fixtures/docker_engine.py), and in one container (host
network, root) runs on HEAD of this checkout (`git archive`): `bash scripts/install-system-deps.sh`,
`make setup`, the unit tests, then the integration tests that need the system packages but no Docker engine.
Writes what was installed, each step's duration and the pass/fail counts to
bench/results/bare-machine-<date>.{json,md}; each step's full log goes to work/bare-machine/<time>/ (not
committed). `--all-integration` runs every integration test but the Docker-engine ones (~25 min in all).

The container reaches PyPI and npm the way this host does: the host's pip settings (wheel folders and file://
indexes on its disk, mounted read-only, and its constraints) stand for PyPI, and pip and Node.js trust the
host's CA bundle because this sandbox's egress proxy intercepts TLS. A machine on the internet needs neither.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import shlex
import subprocess
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.results_file import write_result
from defectflow.packaging.base_image import APT_SOURCES, BaseImageRecipe, ensure_base_image, host_apt_mirror
from tests.fixtures.docker_engine import BASE_IMAGE_CACHE, docker_engine

REPO = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).with_name("results")
LOGS = REPO / "work" / "bare-machine"
BARE = BaseImageRecipe(packages=("git",), repository="defectflow-bare")
IN_REPO = "/root/defectflow"  # where the copy of HEAD lies in the container
IN_LOGS = "/bare-check"  # the host's log folder, mounted
IN_CA = "/etc/bare-check-ca.crt"
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")
# pip settings that say where packages come from; the rest (cert, timeouts) is the host's business.
PIP_SOURCE_KEYS = ("index-url", "extra-index-url", "find-links", "constraint")

# The integration tests the container can run: the throwaway PostgreSQL cluster, Azurite, headless Chromium,
# a Prefect server on PostgreSQL, kubectl, pip against the index. What they need is what make test installs.
INTEGRATION_TESTS = ("tests/integration/test_scoring_postgres.py", "tests/integration/test_azure_ingest.py",
                     "tests/integration/test_dashboard_browser.py", "tests/integration/test_prefect_postgres.py",
                     "tests/integration/test_wheelhouse.py", "tests/unit/test_k8s_manifests.py")
NEEDS_DOCKER_ENGINE = {
    "tests/integration/test_container_image.py": "builds and runs the serving image on a Docker engine",
    "tests/integration/test_batch_image.py": "builds and runs the batch image on a Docker engine",
}
DOCKER_REASON = ("dockerd cannot run inside an unprivileged container (no Docker-in-Docker here); on a bare "
                 "machine these tests start their own dockerd from the docker.io package the script installs")


INSTALL_STEPS = ("system-deps", "setup")


@dataclass(frozen=True)
class Step:
    name: str
    command: str
    timeout_s: int
    junit: bool = False  # the command writes {IN_LOGS}/<name>.xml


def steps(integration: tuple[str, ...]) -> list[Step]:
    pytest = ".venv/bin/pytest -q -p no:cacheprovider"
    return [
        Step("system-deps", "bash scripts/install-system-deps.sh", 1800),
        Step("setup", "make setup", 2400),
        Step("unit", f'{pytest} -m "not integration" --junitxml={IN_LOGS}/unit.xml tests', 2400, junit=True),
        Step("integration", f"{pytest} -m integration --durations=15 --junitxml={IN_LOGS}/integration.xml "
                            + " ".join(integration), 2400, junit=True),
    ]


def host_pip_sources() -> dict[str, str]:
    """The host's pip settings that name package sources (`pip config list`), as PIP_* environment variables."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            check=True).stdout
    env = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name in PIP_SOURCE_KEYS:
            env["PIP_" + name.upper().replace("-", "_")] = value.strip().strip("'\"")
    return env


def local_paths(pip_env: dict[str, str]) -> list[str]:
    """The folders and files on this disk that the pip settings point at (they are mounted read-only).

    A file:// index is mounted with its parent: its pages link to the files beside it (`../../files/…`).
    """
    items = [v for value in pip_env.values() for v in value.split()]
    paths = {str(Path(v.removeprefix("file://")).parent) if v.startswith("file:///") else v
             for v in items if v.startswith(("/", "file:///"))}
    return sorted(paths)


def tar_of(files: dict[str, bytes]) -> bytes:
    """An in-memory tar of `path → content`, for Docker's put_archive (paths relative to /)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data in files.items():
            info = tarfile.TarInfo(path.lstrip("/"))
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def sh(container, command: str) -> str:
    """Run a short command in the container; its output (raises on a non-zero exit)."""
    code, out = container.exec_run(["bash", "-c", command], workdir=IN_REPO)
    text = out.decode(errors="replace")
    if code != 0:
        raise RuntimeError(f"`{command}` failed in the container ({code}): {text[-1000:]}")
    return text


def run_step(api, container_id: str, step: Step, logs: Path) -> dict:
    """Run one step, its output going to logs/<name>.log; its exit code and wall time."""
    wrapped = f"timeout {step.timeout_s} bash -c {shlex.quote(step.command)} > {IN_LOGS}/{step.name}.log 2>&1"
    exec_id = api.exec_create(container_id, ["bash", "-c", wrapped], workdir=IN_REPO)["Id"]
    print(f"[bare-machine] {step.name}: {step.command}", flush=True)
    started = time.monotonic()
    api.exec_start(exec_id)  # blocks until the step ends (the client's timeout is longer than the step's)
    duration = round(time.monotonic() - started, 1)
    code = api.exec_inspect(exec_id)["ExitCode"]
    log = logs / f"{step.name}.log"
    result = {"name": step.name, "command": step.command, "exit_code": code, "duration_s": duration,
              "log": str(log.relative_to(REPO))}
    if step.junit and (logs / f"{step.name}.xml").exists():
        result["tests"] = junit_counts(logs / f"{step.name}.xml")
    elif code != 0:
        result["log_tail"] = log.read_text(errors="replace").splitlines()[-25:]
    print(f"[bare-machine] {step.name}: exit {code} in {duration} s", flush=True)
    return result


def junit_counts(path: Path) -> dict:
    """Passed/failed/errors/skipped from pytest's JUnit XML, and each test that did not pass with its message."""
    suite = ET.parse(path).getroot()
    suite = suite.find("testsuite") if suite.tag == "testsuites" else suite
    assert suite is not None, f"no testsuite in {path}"
    counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    counts["not_passed"] = {}
    for case in suite.iter("testcase"):
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            test = f"{case.get('classname')}::{case.get('name')}".lstrip(":")
            counts["not_passed"][test] = (problem.get("message") or "").strip()[:400]
    return counts


def dpkg_packages(container) -> dict[str, str]:
    listed = sh(container, "dpkg-query -W -f='${db:Status-Abbrev} ${Package} ${Version}\\n'")
    return {name: version for status, name, version in (line.split() for line in listed.splitlines())
            if status.startswith("ii")}


def inventory(container, before: dict[str, str], deps_log: Path) -> dict:
    """What the two commands installed: apt packages (asked for, and all new ones), Azurite, the venv."""
    after = dpkg_packages(container)
    asked = re.search(r"^installing system packages: (.*)$", deps_log.read_text(errors="replace"), re.MULTILINE)
    versions = {}
    for what, command in {"python3": "python3 --version", "node": "node --version", "npm": "npm --version",
                          "azurite": "node -p \"require('./node_modules/azurite/package.json').version\"",
                          "chromium": "chromium --version", "initdb": "ls /usr/lib/postgresql/*/bin/initdb",
                          "kubectl": "kubectl version --client -o yaml | grep gitVersion",
                          "docker": "dockerd --version", "pip": ".venv/bin/pip --version"}.items():
        with contextlib.suppress(RuntimeError):
            versions[what] = sh(container, command).strip()
    freeze = []
    with contextlib.suppress(RuntimeError):  # no venv when make setup failed early
        freeze = sh(container, ".venv/bin/pip list --format=freeze").split()
    return {"apt_asked": asked.group(1).split() if asked else [],
            "apt_new": {k: v for k, v in after.items() if before.get(k) != v},
            "apt_before": len(before), "apt_after": len(after), "versions": versions,
            "pip_packages": len(freeze), "pip_pins": {p.split("==")[0]: p.split("==")[-1] for p in freeze
                                                      if p.split("==")[0] in ("torch", "mlflow", "prefect")}}


def check(integration: tuple[str, ...]) -> dict:
    """Run the steps in a fresh bare container; the result (also when a step fails)."""
    import docker

    stamp = datetime.now(UTC)
    logs = LOGS / f"{stamp:%Y%m%dT%H%M%SZ}"
    logs.mkdir(parents=True)
    pip_env = host_pip_sources()
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                            check=True).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", f"--prefix={Path(IN_REPO).name}/", "HEAD"],
                             cwd=REPO, capture_output=True, check=True).stdout
    result: dict = {"created_at": stamp.isoformat(timespec="seconds"), "machine": machine.describe("cpu"),
                    "commit": commit, "image": {"suite": BARE.suite, "variant": BARE.variant,
                                                "extra_packages": list(BARE.packages), "mirror": host_apt_mirror()},
                    "pypi_emulation": pip_env, "steps": []}
    # The suite's engine fixture, as a plain context manager (its function is kept in __wrapped__).
    with contextlib.contextmanager(docker_engine.__wrapped__)() as engine:
        client = docker.DockerClient(base_url=engine.base_url, version="auto",
                                     timeout=max(s.timeout_s for s in steps(integration)) + 120)
        started = time.monotonic()
        image = ensure_base_image(client, BASE_IMAGE_CACHE, BARE)
        result["image"].update(tag=image, make_s=round(time.monotonic() - started, 1))
        volumes = {p: {"bind": p, "mode": "ro"} for p in local_paths(pip_env)}
        volumes |= {str(HOST_CA): {"bind": IN_CA, "mode": "ro"}, str(logs): {"bind": IN_LOGS, "mode": "rw"}}
        container = client.containers.run(
            image, ["sleep", "infinity"], detach=True, network_mode="host", init=True, shm_size="2g",
            volumes=volumes, working_dir="/root",
            environment={**pip_env, "PIP_CERT": IN_CA, "NODE_EXTRA_CA_CERTS": IN_CA, "OMP_WAIT_POLICY": "PASSIVE"})
        try:
            container.put_archive("/root", archive)
            # A Debian 12 installation has the release, updates and security suites (debootstrap writes only
            # the release): the host's deb822 sources give all three from the same mirror.
            container.put_archive("/", tar_of({"etc/apt/sources.list.d/debian.sources": APT_SOURCES.read_bytes(),
                                               "etc/apt/sources.list": b""}))
            before = dpkg_packages(container)
            for step in steps(integration):
                done = run_step(client.api, container.id, step, logs)
                result["steps"].append(done)
                if step.name == "setup":
                    result["installed"] = inventory(container, before, logs / "system-deps.log")
                if done["exit_code"] != 0 and step.name in INSTALL_STEPS:
                    break  # the tests need what these install
        finally:
            container.remove(force=True)
            client.close()
    result["not_run_in_container"] = {test: f"{why}: {DOCKER_REASON}" for test, why in NEEDS_DOCKER_ENGINE.items()}
    result["not_checked"] = ["Ubuntu 24.04: no Ubuntu mirror is reachable offline here, so only Debian 12 is checked"]
    return result


def to_markdown(result: dict) -> str:
    lines = [f"# Bare Debian 12: install-system-deps.sh, make setup, tests ({result['created_at']})", "",
             f"Commit `{result['commit'][:12]}`; image {result['image'].get('tag', '?')} (debootstrap "
             f"{result['image']['variant']} {result['image']['suite']} + {', '.join(result['image']['extra_packages'])}"
             f" from {result['image']['mirror']}); host {result['machine']['cpu_model']}, "
             f"{result['machine']['cores']} cores.", "",
             "| step | command | exit | minutes | tests passed / failed / errors / skipped |",
             "|---|---|---:|---:|---|"]
    for s in result["steps"]:
        t = s.get("tests")
        counts = f"{t['passed']} / {t['failures']} / {t['errors']} / {t['skipped']}" if t else ""
        lines.append(f"| {s['name']} | `{s['command']}` | {s['exit_code']} | {s['duration_s'] / 60:.1f} | {counts} |")
    for s in result["steps"]:
        if s.get("tests", {}).get("not_passed"):
            lines += ["", f"Not passed ({s['name']}; whole output in {s['log']} on the machine that ran it):", ""]
            lines += [f"- `{t}`: {why.splitlines()[0] if why else ''}" for t, why in s["tests"]["not_passed"].items()]
        if "log_tail" in s:
            lines += ["", f"{s['name']} failed; end of {s['log']}:", "```", *s["log_tail"], "```"]
    inst = result.get("installed")
    if inst:
        lines += ["", "## What was installed", "",
                  f"- apt, asked for by the script: {' '.join(inst['apt_asked'])}",
                  f"- apt, all new packages with their dependencies: {len(inst['apt_new'])} "
                  f"({inst['apt_before']} → {inst['apt_after']}; names and versions in the JSON file)",
                  *[f"- {k}: {v}" for k, v in inst["versions"].items()],
                  f"- pip: {inst['pip_packages']} packages in .venv ("
                  + ", ".join(f"{k} {v}" for k, v in inst["pip_pins"].items()) + ")"]
    lines += ["", "## Not run or not checked", ""]
    lines += [f"- `{t}`: {why}" for t, why in result["not_run_in_container"].items()]
    lines += [f"- {n}" for n in result["not_checked"]]
    lines += ["", "PyPI here is the host's pip sources (mounted read-only): "
              + ", ".join(f"{k}={v}" for k, v in result["pypi_emulation"].items())
              + "; pip and Node.js trust the host's CA bundle because this sandbox's egress proxy intercepts TLS."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bare_machine", description=__doc__.splitlines()[0])
    p.add_argument("--integration", nargs="+", default=list(INTEGRATION_TESTS),
                   help="integration test files to run in the container (default: some per service installed)")
    p.add_argument("--all-integration", action="store_true",
                   help="run every integration test except those needing a Docker engine (~15 more minutes)")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    integration = tuple(args.integration)
    if args.all_integration:
        integration = ("tests", *(f"--ignore={test}" for test in NEEDS_DOCKER_ENGINE))
    result = check(integration)
    write_result(args.out, f"bare-machine-{datetime.now(UTC):%Y-%m-%d}", result, to_markdown(result))
    print(to_markdown(result))
    failed = [s for s in result["steps"] if s["exit_code"] != 0]
    return 1 if failed or len(result["steps"]) < len(steps(integration)) else 0


if __name__ == "__main__":
    raise SystemExit(main())
