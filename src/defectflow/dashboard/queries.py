"""Read the results database for the dashboard: filters, latest results, the review queue.

All queries take the filters the operator set on the page (date range on captured_at, falling
back to scored_at for images without one; camera; board; model version) so both tables
always show the same slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from defectflow.registry.names import ModelVersionRef
from defectflow.scoring.results import Review, Score


@dataclass(frozen=True)
class Filters:
    date_from: date | None = None
    date_to: date | None = None  # inclusive
    camera: str | None = None
    board: str | None = None
    model: ModelVersionRef | None = None


@dataclass(frozen=True)
class FilterOptions:
    cameras: list[str]
    boards: list[str]
    models: list[ModelVersionRef]  # most recently scored first


def event_time() -> sa.ColumnElement:
    """When the image was taken if known, else when it was scored."""
    return sa.func.coalesce(Score.captured_at, Score.scored_at)


def filter_options(session: Session) -> FilterOptions:
    cameras = session.scalars(sa.select(Score.camera_id).where(Score.camera_id.is_not(None)).distinct()
                              .order_by(Score.camera_id))
    boards = session.scalars(sa.select(Score.board_id).where(Score.board_id.is_not(None)).distinct()
                             .order_by(Score.board_id))
    models = session.execute(sa.select(Score.model_name, Score.model_version)
                             .group_by(Score.model_name, Score.model_version)
                             .order_by(sa.func.max(Score.scored_at).desc()))
    return FilterOptions(list(cameras), list(boards), [ModelVersionRef(n, v) for n, v in models])


def _apply(query: sa.Select, filters: Filters) -> sa.Select:
    if filters.date_from:
        query = query.where(event_time() >= datetime.combine(filters.date_from, time.min, UTC))
    if filters.date_to:
        query = query.where(event_time() < datetime.combine(filters.date_to + timedelta(days=1), time.min, UTC))
    if filters.camera:
        query = query.where(Score.camera_id == filters.camera)
    if filters.board:
        query = query.where(Score.board_id == filters.board)
    if filters.model:
        query = query.where(Score.model_name == filters.model.name, Score.model_version == filters.model.version)
    return query


def latest_results(session: Session, filters: Filters, limit: int) -> list[Score]:
    query = _apply(sa.select(Score), filters).order_by(Score.scored_at.desc(), Score.id.desc()).limit(limit)
    return list(session.scalars(query))


def _unreviewed_fail() -> sa.ColumnElement[bool]:
    """A fail decision whose image content no operator has reviewed yet (under any model version)."""
    reviewed = aliased(Score)
    already = (sa.select(Review.id).join(reviewed, Review.score_id == reviewed.id)
               .where(reviewed.sha256 == Score.sha256).exists())
    return sa.and_(Score.decision == "fail", ~already)


def awaiting_review(session: Session, filters: Filters, limit: int) -> list[Score]:
    """The review queue, most confident fails first."""
    query = _apply(sa.select(Score).where(_unreviewed_fail()), filters)
    return list(session.scalars(query.order_by(Score.probability.desc(), Score.id).limit(limit)))


def count_awaiting_review(session: Session, filters: Filters) -> int:
    query = _apply(sa.select(sa.func.count(Score.id)).where(_unreviewed_fail()), filters)
    return int(session.scalar(query) or 0)


def recent_reviews(session: Session, limit: int) -> list[Review]:
    return list(session.scalars(sa.select(Review).order_by(Review.reviewed_at.desc(), Review.id.desc()).limit(limit)))
