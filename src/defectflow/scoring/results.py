"""The results database: one row per (image content, model version) scored, plus operator reviews.

SQLAlchemy 2.0 models, so the same code runs on a SQLite file (the local default) and on
PostgreSQL (production; Azure Cosmos DB for PostgreSQL speaks the same protocol). The unique
constraint on (sha256, model_name, model_version) is what makes batch scoring idempotent: a
re-run, or two runs racing, can never write the same score twice.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from defectflow.errors import ConfigError
from defectflow.redact import redact_url, scrub
from defectflow.workdir import Workdir

RESULTS_URL_ENV = "DEFECTFLOW_RESULTS_URL"
DECISIONS = ("pass", "fail")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Score(Base):
    """The model's verdict on one image. `source` + `image` locate the file it was computed from."""

    __tablename__ = "scores"
    __table_args__ = (
        sa.UniqueConstraint("sha256", "model_name", "model_version", name="uq_scores_content_model"),
        sa.Index("ix_scores_decision_scored_at", "decision", "scored_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(sa.String(1024))  # input folder or azure://container/prefix
    image: Mapped[str] = mapped_column(sa.String(1024))  # posix path relative to source
    sha256: Mapped[str] = mapped_column(sa.String(64), index=True)
    captured_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True), index=True)
    board_id: Mapped[str | None] = mapped_column(sa.String(256), index=True)
    camera_id: Mapped[str | None] = mapped_column(sa.String(256), index=True)
    probability: Mapped[float] = mapped_column(sa.Float)
    decision: Mapped[str] = mapped_column(sa.String(8))
    model_name: Mapped[str] = mapped_column(sa.String(256))
    model_version: Mapped[str] = mapped_column(sa.String(64))
    scored_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)

    reviews: Mapped[list[Review]] = relationship(back_populates="score", order_by="Review.reviewed_at")


class Review(Base):
    """An operator's verdict on a score: `label` equal to the decision confirms it, otherwise corrects it."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    score_id: Mapped[int] = mapped_column(sa.ForeignKey("scores.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(sa.String(8))
    reviewer: Mapped[str] = mapped_column(sa.String(256))
    note: Mapped[str | None] = mapped_column(sa.Text)
    reviewed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow, index=True)

    score: Mapped[Score] = relationship(back_populates="reviews")

    @property
    def is_correction(self) -> bool:
        return self.label != self.score.decision


def resolve_results_url(explicit: str | None, workdir: Workdir) -> str:
    """--results, else params score.results_url (passed as `explicit`), else $DEFECTFLOW_RESULTS_URL,
    else a SQLite file in the work directory."""
    if explicit:
        return explicit
    if os.environ.get(RESULTS_URL_ENV):
        return os.environ[RESULTS_URL_ENV]
    return f"sqlite:///{workdir.results_db.resolve()}"


def open_results(url: str) -> sa.Engine:
    """Engine for `url` with the tables created (idempotent). The URL may carry a password:
    anything shown to people goes through `defectflow.redact`."""
    try:
        engine = sa.create_engine(url, pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"results URL {redact_url(url)} is not usable ({scrub(str(exc), url)}); expected e.g. sqlite:///results.db "
            "or postgresql+psycopg2://user@host:5432/db"
        ) from None
    if engine.dialect.name == "sqlite" and engine.url.database:
        Path(engine.url.database).parent.mkdir(parents=True, exist_ok=True)
    try:
        Base.metadata.create_all(engine)
    except sa.exc.OperationalError as exc:
        raise ConfigError(
            f"cannot open the results database {redact_url(engine.url)}: {scrub(str(exc.orig), url)}") from None
    return engine


def scored_hashes(session: Session, model_name: str, model_version: str, hashes: Iterable[str]) -> set[str]:
    """The subset of `hashes` that already has a score for this model version."""
    wanted = list(dict.fromkeys(hashes))
    found: set[str] = set()
    # Chunked IN lists: PostgreSQL and SQLite both cap bound parameters per statement.
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(session.scalars(
            sa.select(Score.sha256).where(
                Score.model_name == model_name, Score.model_version == model_version, Score.sha256.in_(chunk)
            )
        ))
    return found


def insert_scores(session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert rows, silently skipping any that a concurrent run already wrote; returns rows written."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        raise ConfigError(f"results database dialect {dialect!r} is not supported; use SQLite or PostgreSQL")
    statement = (
        insert(Score)
        .on_conflict_do_nothing(index_elements=["sha256", "model_name", "model_version"])
        .returning(Score.id)
    )
    # RETURNING (not rowcount, which drivers report inconsistently for executemany) counts the
    # rows really written: a skipped conflict returns nothing.
    return len(session.execute(statement, [dict(r) for r in rows]).all())
