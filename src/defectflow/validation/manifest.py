"""The manifest table: one row per labels.csv row, its schema, and its atomic writer/reader.

Later stages train on `status == "ok"` rows only; quarantined rows stay in the file with
their reason so nothing is silently dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from defectflow.atomic import atomic_path
from defectflow.validation.rows import RowResult

MANIFEST_SCHEMA = pa.schema([
    ("path", pa.string()),          # relative posix path inside the data folder
    ("sha256", pa.string()),
    ("label", pa.string()),         # pass | fail | null (unlabelled)
    ("captured_at", pa.timestamp("us", tz="UTC")),
    ("width", pa.int64()),
    ("height", pa.int64()),
    ("mode", pa.string()),          # the file's original Pillow mode (converted to RGB when read)
    ("bytes", pa.int64()),
    ("board_id", pa.string()),      # the path itself when labels.csv gives none (each image its own group)
    ("camera_id", pa.string()),
    ("status", pa.string()),        # ok | quarantined
    ("reason", pa.string()),        # a validation.reasons.Reason code, null when ok
    ("detail", pa.string()),        # what exactly was wrong, for people
])
MANIFEST_COLUMNS = tuple(MANIFEST_SCHEMA.names)


def build_manifest(results: Sequence[RowResult]) -> pd.DataFrame:
    """Rows in labels.csv order, plus a `line` column (labels.csv line number) kept in memory only."""
    records = [{
        "path": r.path,
        "sha256": r.facts.sha256,
        "label": r.label,
        "captured_at": r.captured_at,
        "width": r.facts.width,
        "height": r.facts.height,
        "mode": r.facts.mode,
        "bytes": r.facts.bytes,
        # Missing board_id: each image is its own group, so grouped CV cannot leak a board it
        # does not know about; the report says that this happened.
        "board_id": r.board_id or r.path,
        "camera_id": r.camera_id,
        "status": "ok" if r.reason is None else "quarantined",
        "reason": None if r.reason is None else str(r.reason),
        "detail": r.detail,
        "line": r.line,
    } for r in results]
    table = pa.Table.from_pylist(records, schema=MANIFEST_SCHEMA.append(pa.field("line", pa.int64())))
    return table.to_pandas(types_mapper=_nullable_dtype)


def write_manifest(manifest: pd.DataFrame, target: Path) -> None:
    """Write the manifest columns (not `line`) as parquet, atomically."""
    table = pa.Table.from_pandas(manifest[list(MANIFEST_COLUMNS)], schema=MANIFEST_SCHEMA, preserve_index=False)
    with atomic_path(target, suffix=".parquet") as tmp:
        pq.write_table(table, tmp)


def read_manifest(path: Path) -> pd.DataFrame:
    """Read a manifest written by write_manifest with the same nullable dtypes."""
    return pq.read_table(path).to_pandas(types_mapper=_nullable_dtype)


def _nullable_dtype(arrow_type: pa.DataType) -> object:
    """Arrow → pandas dtypes that keep nulls in integer and string columns."""
    if pa.types.is_integer(arrow_type):
        return pd.Int64Dtype()
    if pa.types.is_string(arrow_type):
        return pd.StringDtype()
    return None
