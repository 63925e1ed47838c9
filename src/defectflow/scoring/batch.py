"""Batch scoring: score every image of an input not yet scored by a model version, into the results DB.

Steps: list the input → hash every file → drop contents this model version already scored
(one query) → check the rest decode (the validation stage's own per-image check, so what is
scored is what training would accept) → predict in batches, committing each batch.
Idempotent: a re-run finds everything scored and writes nothing (the database's unique
constraint backs this up against concurrent runs). Resumable: a killed run keeps every
committed batch and the next run starts where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session
from tqdm import tqdm

from defectflow.hashing import sha256_file
from defectflow.params import AzureParams, ValidateParams
from defectflow.redact import redact_url
from defectflow.scoring.inputs import InputImage, ScoringInput, open_input
from defectflow.scoring.model import Scorer, load_scorer
from defectflow.scoring.results import DECISIONS, insert_scores, open_results, scored_hashes, utcnow
from defectflow.validation.scan import check_image

log = logging.getLogger(__name__)


@dataclass
class ScoringPlan:
    """What a run will do, decided before the model is loaded."""

    to_score: list[tuple[InputImage, str]] = field(default_factory=list)  # (image, sha256)
    already_scored: int = 0
    duplicates: int = 0  # same content at a second path in this input: scored once
    unreadable: dict[str, str] = field(default_factory=dict)  # image → why


def plan_scoring(inputs: ScoringInput, scorer: Scorer, engine: sa.Engine, validate: ValidateParams,
                 progress: bool = True) -> ScoringPlan:
    """Hash the input and keep only contents not yet scored by `scorer`'s version and that decode."""
    hashes = [sha256_file(img.path) for img in tqdm(inputs.images, desc="hashing", unit="img", disable=not progress)]
    with Session(engine) as session:
        done = scored_hashes(session, scorer.name, scorer.version, hashes)
    plan, seen = ScoringPlan(), set(done)
    for img, sha in zip(inputs.images, hashes, strict=True):
        if sha in done:
            plan.already_scored += 1
        elif sha in seen:
            plan.duplicates += 1
        else:
            seen.add(sha)
            facts = check_image(img.path, validate)
            if facts.reason is not None:
                plan.unreadable[img.image] = f"{facts.reason.value}: {facts.detail}"
            else:
                plan.to_score.append((img, sha))
    return plan


def run_scoring(inputs: ScoringInput, scorer: Scorer, engine: sa.Engine, plan: ScoringPlan, batch_size: int,
                progress: bool = True) -> int:
    """Predict the plan in batches, committing each; returns the number of rows written."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    written = 0
    with tqdm(total=len(plan.to_score), desc=f"scoring v{scorer.version}", unit="img", disable=not progress) as bar:
        for start in range(0, len(plan.to_score), batch_size):
            batch = plan.to_score[start : start + batch_size]
            predictions = scorer.predict([img.path for img, _ in batch])
            rows = [_row(inputs.source, img, sha, pred, scorer)
                    for (img, sha), pred in zip(batch, predictions.itertuples(index=False), strict=True)]
            with Session(engine) as session, session.begin():
                written += insert_scores(session, rows)
            bar.update(len(batch))
    return written


def score_input(inputs: ScoringInput, scorer: Scorer, engine: sa.Engine, *, batch_size: int,
                validate: ValidateParams | None = None, progress: bool = True) -> dict[str, Any]:
    """Plan and run; return a summary (counts, model identity, the results URL without password)."""
    plan = plan_scoring(inputs, scorer, engine, validate or ValidateParams(), progress)
    for image, reason in plan.unreadable.items():
        log.warning("not scored: %s (%s)", image, reason)
    written = run_scoring(inputs, scorer, engine, plan, batch_size, progress) if plan.to_score else 0
    return {
        "source": inputs.source,
        "model_name": scorer.name,
        "model_version": scorer.version,
        "results": redact_url(engine.url),
        "images": len(inputs.images),
        "already_scored": plan.already_scored,
        "duplicates": plan.duplicates,
        "unreadable": plan.unreadable,
        "scored": written,
    }


def score(input_spec: str, model_uri: str, results_url: str, *, batch_size: int, blob_cache: Path,
          tracking_uri: str | None = None, validate: ValidateParams | None = None,
          azure: AzureParams | None = None, progress: bool = True) -> dict[str, Any]:
    """The whole batch job from plain strings: what `defectflow score` and flows/scoring.py call."""
    engine = open_results(results_url)
    try:
        return score_input(open_input(input_spec, blob_cache, azure), load_scorer(model_uri, tracking_uri), engine,
                           batch_size=batch_size, validate=validate, progress=progress)
    finally:
        engine.dispose()


def _row(source: str, img: InputImage, sha: str, pred: Any, scorer: Scorer) -> dict[str, Any]:
    decision = str(pred.decision)
    if decision not in DECISIONS:
        raise ValueError(f"model {scorer.uri} returned decision {decision!r} for {img.image}; expected pass or fail")
    return {
        "source": source,
        "image": img.image,
        "sha256": sha,
        "captured_at": img.meta.captured_at,
        "board_id": img.meta.board_id,
        "camera_id": img.meta.camera_id,
        "probability": float(pred.fail_probability),
        "decision": decision,
        "model_name": scorer.name,
        "model_version": scorer.version,
        "scored_at": utcnow(),
    }
