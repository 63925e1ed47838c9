"""Merge labels from blobs into DEST/labels.csv (the data contract's label file).

Sources, lowest precedence first:
1. rows already in DEST/labels.csv (kept, including rows for images that did not come from Blob);
2. blob metadata / index tags on each ingested image (`label`, `captured_at`, `board_id`,
   `camera_id`; `captured_at` falls back to the blob's creation time);
3. `labels.csv` blobs, whose `image` column is relative to the folder the CSV blob sits in.
A later source replaces an earlier row for the same image: the blob store is the source of truth,
so a label corrected upstream is corrected here. Incoming rows whose image is not (yet) in DEST
are held back and counted as pending; they are merged by the run that brings the image. The file
is rebuilt from the state on every run and rewritten atomically only when its content changes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any

from defectflow.atomic import write_text
from defectflow.azure.blob_source import UnsafeBlobName, safe_relative_path

CONTRACT_COLUMNS = ("image", "label", "captured_at", "board_id", "camera_id")


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of a CSV file (empty when the file does not exist)."""
    if not path.exists():
        return [], []
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), [dict(r) for r in reader]


def rows_from_label_csv(staged: Path,
                        csv_rel: PurePosixPath) -> tuple[list[dict[str, str]], list[dict[str, object]]]:
    """Rows of a staged labels.csv blob with `image` rewritten relative to DEST; unsafe paths rejected."""
    _, rows = read_rows(staged)
    good, rejected = [], []
    folder = csv_rel.parent
    for line, row in enumerate(rows, start=2):
        raw = (row.get("image") or "").strip()
        try:
            rel = safe_relative_path(raw)
        except UnsafeBlobName as exc:
            rejected.append({"labels_blob": str(csv_rel), "line": line, "image": raw, "reason": str(exc)})
            continue
        good.append({**row, "image": str(folder / rel) if str(folder) != "." else str(rel)})
    return good, rejected


def row_from_metadata(image: str, labels: dict[str, str], created: str | None) -> dict[str, str] | None:
    """A contract row from an image blob's metadata, or None when it carries no label."""
    if not labels.get("label"):
        return None
    row = {"image": image, **labels}
    row.setdefault("captured_at", created or "")
    return row


def merge_labels(dest: Path, incoming: Iterable[dict[str, str]]) -> dict[str, Any]:
    """Merge `incoming` rows (in precedence order) into DEST/labels.csv; return counts."""
    target = dest / "labels.csv"
    header, existing = read_rows(target)
    merged: dict[str, dict[str, str]] = {r.get("image", ""): r for r in existing}
    added = updated = pending = 0
    columns = list(CONTRACT_COLUMNS) + [c for c in header if c not in CONTRACT_COLUMNS]
    for row in incoming:
        image = row["image"]
        if not (dest / image).is_file():
            pending += 1
            continue
        columns += [c for c in row if c not in columns]
        old = merged.get(image)
        candidate = {**(old or {}), **{k: v for k, v in row.items() if v not in (None, "")}}
        if old is None:
            added += 1
        elif candidate != old:
            updated += 1
        merged[image] = candidate
    text = _render(columns, merged.values())
    changed = not target.exists() or target.read_text(encoding="utf-8-sig") != text
    if changed and merged:
        write_text(target, text)
    return {"rows": len(merged), "added": added, "updated": updated, "pending": pending,
            "written": changed and bool(merged)}


def _render(columns: list[str], rows: Iterable[dict[str, str]]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in sorted(rows, key=lambda r: r.get("image", "")):
        writer.writerow({c: row.get(c, "") for c in columns})
    return buf.getvalue()
