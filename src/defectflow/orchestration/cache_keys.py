"""Cache keys for the training flow's tasks, derived from the content of each stage's inputs.

A re-run after a crash finds the keys of the stages that completed unchanged and resumes at
the first stage whose inputs changed (or that never finished). Keys hash what the stage's
declaration (defectflow.stages) says it reads — file contents (the manifest, features,
predictions), the data folder — and its own params, never timestamps of the run.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from defectflow.hashing import sha256_file
from defectflow.stages import DATA, SEED, Stage, StageRun


def data_folder_digest(data_dir: Path) -> str:
    """labels.csv content plus every file's relative path, size and modification time.

    Hashing every image would cost as much as validating them; size + mtime changes whenever
    an image is replaced, and validate itself records each image's sha256.
    """
    data_dir = Path(data_dir)
    h = hashlib.sha256()
    labels = data_dir / "labels.csv"
    h.update(sha256_file(labels).encode() if labels.exists() else b"no-labels")
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            st = path.lstat()
            h.update(f"{path.relative_to(data_dir).as_posix()}\x1f{st.st_size}\x1f{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of a file, or of every file below a folder (sorted by relative path)."""
    path = Path(path)
    if path.is_dir():
        h = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{child.relative_to(path).as_posix()}\x1f{sha256_file(child)}\n".encode())
        return h.hexdigest()
    return sha256_file(path) if path.exists() else "missing"


def stage_key(stage: str, *parts: Any) -> str:
    """One key from the stage name and its inputs (digests, params dataclasses, plain values)."""
    normal = [asdict(p) if is_dataclass(p) else p for p in parts]
    blob = json.dumps([stage, *normal], sort_keys=True, default=str)
    return f"defectflow-{stage}-{hashlib.sha256(blob.encode()).hexdigest()[:32]}"


def stage_cache_key(stage: Stage, run: StageRun) -> str:
    """The key of one stage's task: digests of its declared inputs, the work directory, its params
    sections and, for a stage that registers models, the registry it writes to (registering twice
    would create a second version of the same model: a resumed run reuses the first)."""
    inputs = [data_folder_digest(run.data) if name == DATA else file_digest(getattr(run.workdir, name))
              for name in stage.reads]
    params = [stage.seed(run) if name == SEED else stage.section(run, name) for name in stage.params]
    registry = [run.tracking_uri] if stage.registry else []
    return stage_key(stage.name, *inputs, str(run.workdir.root.resolve()), *params, *registry)
