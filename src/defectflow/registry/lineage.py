"""Dataset lineage recorded with every run: which images, labels and DVC stage hashes made it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import yaml

from defectflow.hashing import sha256_file
from defectflow.workdir import Workdir


def manifest_digest(manifest: pd.DataFrame) -> str:
    """One hash over the usable, labelled content: same images and labels → same digest."""
    rows = manifest[manifest["status"] == "ok"][["path", "sha256", "label", "captured_at"]].astype(str)
    h = hashlib.sha256()
    for row in sorted(map(tuple, rows.to_numpy())):
        h.update("\x1f".join(row).encode())
        h.update(b"\n")
    return h.hexdigest()


def dvc_lock_hashes(lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """md5 of every dep/out DVC recorded, keyed 'stage:path' (empty outside a DVC repo)."""
    if not lock.exists():
        return {}
    stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
    out = {}
    for stage, body in stages.items():
        for kind in ("deps", "outs"):
            for item in body.get(kind, []) or []:
                if "md5" in item:
                    out[f"{stage}:{item['path']}"] = item["md5"]
    return out


def lineage(data_dir: Path, workdir: Workdir) -> dict[str, str]:
    manifest = pd.read_parquet(workdir.manifest)
    labels = Path(data_dir) / "labels.csv"
    info = {
        "data.dir": str(data_dir),
        "data.manifest_digest": manifest_digest(manifest),
        "data.n_images": str(len(manifest)),
        "data.n_ok": str(int((manifest["status"] == "ok").sum())),
    }
    if labels.exists():
        info["data.labels_csv_sha256"] = sha256_file(labels)
    info.update({f"dvc.{k}": v for k, v in dvc_lock_hashes().items()})
    return info
