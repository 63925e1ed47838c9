"""Operator reviews: record a confirmation or correction, and export reviews as training labels.

This is how new labels flow back: a review says what the board really was; `export_labels`
writes the reviewed images as labels.csv rows in the data contract's format
(image,label,captured_at,board_id,camera_id), ready to be added to the next training set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.orm import Session

from defectflow.atomic import atomic_path
from defectflow.errors import ConfigError
from defectflow.scoring.results import DECISIONS, Review, Score, utcnow
from defectflow.validation.labels import EXPECTED_HEADER

LABEL_COLUMNS = EXPECTED_HEADER.split(",")
MAX_REVIEWER_CHARS = 120


class ReviewError(ValueError):
    """The review cannot be stored as given (unknown score, bad label, no reviewer)."""


def record_review(session: Session, score_id: int, label: str, reviewer: str) -> Review:
    """Store `reviewer`'s verdict `label` on score `score_id` (the caller commits)."""
    label = label.strip().lower()
    if label not in DECISIONS:
        raise ReviewError(f"label must be pass or fail, got {label!r}")
    reviewer = " ".join(reviewer.split())
    if not reviewer:
        raise ReviewError("enter the operator's name before confirming or correcting a decision")
    if len(reviewer) > MAX_REVIEWER_CHARS:
        raise ReviewError(f"operator name is longer than {MAX_REVIEWER_CHARS} characters")
    score = session.get(Score, score_id)
    if score is None:
        raise ReviewError(f"no scored image with id {score_id}")
    review = Review(score=score, label=label, reviewer=reviewer, reviewed_at=utcnow())
    session.add(review)
    session.flush()
    return review


@dataclass(frozen=True)
class ExportSummary:
    rows: int
    corrections: int
    without_captured_at: int
    source: str | None


def export_labels(session: Session, out: Path, source: str | None = None,
                  only_corrections: bool = False) -> ExportSummary:
    """Write the latest review of each reviewed image as labels.csv (atomically).

    Image paths in labels.csv are relative to one data folder, so the export covers one input
    source; with several in the database, `source` must say which.
    """
    sources = list(session.scalars(sa.select(Score.source).join(Score.reviews).distinct().order_by(Score.source)))
    if source is None and len(sources) > 1:
        raise ConfigError(
            "reviews exist for several inputs; choose one with --source (image paths are relative to it): "
            + ", ".join(sources)
        )
    query = sa.select(Review, Score).join(Score, Review.score_id == Score.id)
    if source is not None:
        query = query.where(Score.source == source)
    frame = pd.DataFrame(
        [{"image": s.image, "label": r.label, "captured_at": s.captured_at, "board_id": s.board_id,
          "camera_id": s.camera_id, "decision": s.decision, "reviewed_at": r.reviewed_at, "review_id": r.id}
         for r, s in session.execute(query)],
        columns=[*LABEL_COLUMNS, "decision", "reviewed_at", "review_id"],
    )
    # One image may have been reviewed several times (or under several model versions): the
    # newest review is the operator's final word.
    frame = frame.sort_values(["reviewed_at", "review_id"]).drop_duplicates("image", keep="last")
    corrected = frame["label"] != frame["decision"]
    if only_corrections:
        frame = frame[corrected]
    frame = frame.sort_values("image")
    out_frame = frame[LABEL_COLUMNS].copy()
    out_frame["captured_at"] = [_iso_utc(v) for v in out_frame["captured_at"]]
    with atomic_path(out, suffix=".csv") as tmp:
        out_frame.to_csv(tmp, index=False)
    return ExportSummary(rows=len(out_frame), corrections=int(corrected.loc[frame.index].sum()),
                         without_captured_at=int((out_frame["captured_at"] == "").sum()),
                         source=source or (sources[0] if sources else None))


def _iso_utc(value: object) -> str:
    """ISO-8601 in UTC with a Z; SQLite hands datetimes back naive (they were stored as UTC)."""
    if value is None or pd.isna(value):
        return ""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
