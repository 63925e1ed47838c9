"""Batch scoring into a SQLite results database with a real registered MLflow pyfunc."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from sqlalchemy.orm import Session

from defectflow.errors import ConfigError, RegistryUnavailableError
from defectflow.scoring.batch import score
from defectflow.scoring.results import Score, open_results
from tests.fixtures.scoring_model import CRASH_MARKER, TINY_MODEL_NAME, make_input, write_image

CHAMPION = f"models:/{TINY_MODEL_NAME}@champion"


def run(folder: Path, results: str, registry: str, model: str = CHAMPION, batch_size: int = 3) -> dict:
    return score(str(folder), model, results, batch_size=batch_size, blob_cache=folder.parent / "cache",
                 tracking_uri=registry, progress=False)


def rows(results: str) -> list[Score]:
    engine = open_results(results)
    with Session(engine) as session:
        found = list(session.scalars(sa.select(Score).order_by(Score.image)))
    engine.dispose()
    return found


def test_scores_every_image_with_metadata_and_model_version(tmp_path, tiny_registry):
    folder = make_input(tmp_path / "in")
    results = f"sqlite:///{tmp_path / 'results.db'}"

    summary = run(folder, results, tiny_registry)

    assert summary["scored"] == 8 and summary["model_version"] == "2" and summary["model_name"] == TINY_MODEL_NAME
    scored = {r.image: r for r in rows(results)}
    assert set(scored) == {f"cam1/dark_{i}.png" for i in range(4)} | {f"cam2/bright_{i}.png" for i in range(4)}
    assert {scored[f"cam1/dark_{i}.png"].decision for i in range(4)} == {"fail"}
    assert {scored[f"cam2/bright_{i}.png"].decision for i in range(4)} == {"pass"}
    dark0 = scored["cam1/dark_0.png"]
    with Image.open(folder / "cam1" / "dark_0.png") as image:
        assert dark0.probability == pytest.approx(1 - np.asarray(image.convert("L"), dtype=float).mean() / 255)
    assert (dark0.board_id, dark0.camera_id, dark0.model_version) == ("B0", "cam1", "2")
    assert dark0.captured_at.replace(tzinfo=None).isoformat() == "2026-10-01T08:00:00"
    # +02:00 in labels.csv is stored as UTC
    assert scored["cam2/bright_0.png"].captured_at.replace(tzinfo=None).isoformat() == "2026-10-01T07:00:00"
    # no labels.csv row: scored anyway, metadata empty
    assert scored["cam2/bright_3.png"].captured_at is None and scored["cam2/bright_3.png"].board_id is None
    assert len({r.sha256 for r in scored.values()}) == 8


def test_rerun_writes_nothing_and_new_images_only_are_scored(tmp_path, tiny_registry):
    folder = make_input(tmp_path / "in")
    results = f"sqlite:///{tmp_path / 'results.db'}"
    run(folder, results, tiny_registry)
    before = {(r.id, r.scored_at) for r in rows(results)}

    again = run(folder, results, tiny_registry)
    assert (again["scored"], again["already_scored"]) == (0, 8)
    assert {(r.id, r.scored_at) for r in rows(results)} == before

    write_image(folder / "cam1" / "new.png", grey=10)
    shutil.copy(folder / "cam1" / "dark_0.png", folder / "cam1" / "copy_of_dark_0.png")
    third = run(folder, results, tiny_registry)
    assert (third["scored"], third["already_scored"]) == (1, 9)


def test_another_model_version_scores_the_same_images_again(tmp_path, tiny_registry):
    folder = make_input(tmp_path / "in")
    results = f"sqlite:///{tmp_path / 'results.db'}"
    run(folder, results, tiny_registry)

    summary = run(folder, results, tiny_registry, model=f"models:/{TINY_MODEL_NAME}/1")

    assert (summary["scored"], summary["model_version"]) == (8, "1")
    assert sorted({r.model_version for r in rows(results)}) == ["1", "2"]


def test_interrupted_run_keeps_committed_batches_and_resumes(tmp_path, tiny_registry):
    folder = make_input(tmp_path / "in")
    # Sorted after every cam* image: with batch_size 3 it lands in the 3rd batch, which fails.
    crash = write_image(folder / f"z_{CRASH_MARKER}.png", grey=30)
    results = f"sqlite:///{tmp_path / 'results.db'}"

    with pytest.raises(RuntimeError, match="asked for a crash"):
        run(folder, results, tiny_registry)
    assert len(rows(results)) == 6  # two full batches committed before the failing one

    crash.unlink()
    resumed = run(folder, results, tiny_registry)
    assert (resumed["already_scored"], resumed["scored"]) == (6, 2)
    assert len(rows(results)) == 8


def test_unreadable_images_are_reported_not_scored(tmp_path, tiny_registry):
    folder = make_input(tmp_path / "in")
    (folder / "cam1" / "truncated.png").write_bytes((folder / "cam1" / "dark_0.png").read_bytes()[:60])
    (folder / "cam1" / "empty.png").write_bytes(b"")
    results = f"sqlite:///{tmp_path / 'results.db'}"

    summary = run(folder, results, tiny_registry)

    assert summary["scored"] == 8
    assert set(summary["unreadable"]) == {"cam1/truncated.png", "cam1/empty.png"}
    assert summary["unreadable"]["cam1/empty.png"].startswith("zero_byte")


def test_bad_model_and_input_give_actionable_errors(tmp_path, tiny_registry):
    folder = make_input(tmp_path / "in")
    results = f"sqlite:///{tmp_path / 'results.db'}"
    with pytest.raises(RegistryUnavailableError, match="check the model name and alias"):
        run(folder, results, tiny_registry, model=f"models:/{TINY_MODEL_NAME}@nonexistent")
    with pytest.raises(ConfigError, match="neither a registry URI"):
        run(folder, results, tiny_registry, model=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="is not a folder"):
        run(tmp_path / "nope", results, tiny_registry)
    with pytest.raises(ConfigError, match="not usable") as bad_url:
        run(folder, "nosuchdialect://user:hunter2@host/db", tiny_registry)
    assert "hunter2" not in str(bad_url.value)
