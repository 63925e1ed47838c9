"""Read labels.csv and parse its cells (label, captured_at) into typed values.

The file itself must be well-formed (present, with the required header); problems in single
rows are not errors here: they become quarantine reasons for those rows only.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from defectflow.errors import DataQualityError
from defectflow.validation.reasons import Reason

LABELS_FILE = "labels.csv"
REQUIRED_COLUMNS = ("image", "label", "captured_at")
OPTIONAL_COLUMNS = ("board_id", "camera_id")
EXPECTED_HEADER = ",".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
LABELS = ("pass", "fail")


class LabelsFileMissingError(DataQualityError):
    """The data folder has no labels.csv."""


class LabelsFormatError(DataQualityError):
    """labels.csv cannot be read or lacks required columns."""


@dataclass(frozen=True)
class LabelsTable:
    """labels.csv as strings (empty cell → ""), plus which optional columns it had."""

    rows: pd.DataFrame  # columns: line, image, label, captured_at, board_id, camera_id
    has_board_id: bool
    has_camera_id: bool


def read_labels(data_dir: Path) -> LabelsTable:
    """Read `data_dir/labels.csv`; raise with the expected header when it is missing or incomplete."""
    path = data_dir / LABELS_FILE
    if not path.is_file():
        raise LabelsFileMissingError(
            f"{path} not found: the data folder must hold labels.csv with header "
            f"'{EXPECTED_HEADER}' (board_id and camera_id optional)"
        )
    try:
        # Every cell as text, empty stays "" (not NaN): labels such as "NA" must reach the
        # unknown_label check instead of silently becoming "unlabelled".
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig",
                            skip_blank_lines=True, quoting=csv.QUOTE_MINIMAL)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LabelsFormatError(
            f"{path} is not a readable UTF-8 CSV ({exc}); expected header '{EXPECTED_HEADER}'"
        ) from None
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame = frame.fillna("")  # short (ragged) rows leave NaN even with keep_default_na=False
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise LabelsFormatError(
            f"{path} lacks required column(s) {', '.join(missing)}; found "
            f"'{','.join(frame.columns)}', expected header '{EXPECTED_HEADER}' (board_id and camera_id optional)"
        )
    has_board, has_camera = "board_id" in frame.columns, "camera_id" in frame.columns
    rows = pd.DataFrame({
        # Header is line 1, so data row i (0-based) is on line i + 2: what an editor shows.
        "line": range(2, len(frame) + 2),
        "image": frame["image"].str.strip(),
        "label": frame["label"],
        "captured_at": frame["captured_at"],
        "board_id": frame["board_id"].str.strip() if has_board else "",
        "camera_id": frame["camera_id"].str.strip() if has_camera else "",
    })
    return LabelsTable(rows.reset_index(drop=True), has_board, has_camera)


def parse_label(raw: str) -> tuple[str | None, Reason | None]:
    """'pass'/'fail' in any case with spaces trimmed; empty → unlabelled (None)."""
    value = raw.strip().lower()
    if not value:
        return None, None
    if value in LABELS:
        return value, None
    return None, Reason.UNKNOWN_LABEL


def parse_timestamp(raw: str) -> datetime | None:
    """ISO-8601 → aware UTC datetime; a naive value is taken as UTC (documented in the README)."""
    text = raw.strip()
    if not text:
        return None
    try:
        stamp = datetime.fromisoformat(text)
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    except (ValueError, OverflowError):  # OverflowError: an offset pushes year 1 / 9999 out of range
        return None
