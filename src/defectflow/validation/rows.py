"""Check one labels.csv row end to end: its path, its file, its label and its timestamp."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from defectflow.params import ValidateParams
from defectflow.validation.labels import parse_label, parse_timestamp
from defectflow.validation.paths import resolve_image_path
from defectflow.validation.reasons import Reason
from defectflow.validation.scan import ImageFacts, check_image


@dataclass(frozen=True)
class RowResult:
    line: int
    path: str
    label: str | None
    captured_at: datetime | None
    board_id: str | None
    camera_id: str | None
    facts: ImageFacts
    reason: Reason | None
    detail: str | None


def check_row(root: Path, row: dict[str, object], params: ValidateParams, now: datetime) -> RowResult:
    """Run every per-row check; the first problem (file problems before metadata ones) is the reason."""
    resolved = resolve_image_path(root, str(row["image"]))
    facts = check_image(resolved.file, params) if resolved.file is not None else ImageFacts()
    label, label_problem = parse_label(str(row["label"]))
    captured_at = parse_timestamp(str(row["captured_at"]))

    reason, detail = resolved.reason or facts.reason, resolved.detail or facts.detail
    if reason is None and label_problem is not None:
        reason, detail = label_problem, f"label {str(row['label'])!r}; expected pass, fail or empty"
    if reason is None and captured_at is None:
        reason, detail = Reason.BAD_TIMESTAMP, f"captured_at {str(row['captured_at'])!r} is not ISO-8601"
    if reason is None and captured_at is not None and captured_at > now + timedelta(minutes=params.max_future_minutes):
        reason, detail = Reason.FUTURE_TIMESTAMP, f"captured_at {captured_at.isoformat()} is after {now.isoformat()}"
    return RowResult(
        line=int(row["line"]),  # type: ignore[call-overload]
        path=resolved.relative,
        label=label,
        captured_at=captured_at,
        board_id=str(row["board_id"]) or None,
        camera_id=str(row["camera_id"]) or None,
        facts=facts,
        reason=reason,
        detail=detail,
    )
