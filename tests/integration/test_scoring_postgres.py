"""Batch scoring into PostgreSQL: idempotence, resume, concurrent runs, and the real model (pyfunc and ONNX)."""

from __future__ import annotations

import shutil
import threading

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from defectflow.scoring.batch import score
from defectflow.scoring.results import Score, open_results
from tests.fixtures.scoring_model import CRASH_MARKER, TINY_MODEL_NAME, make_input, write_image

pytestmark = pytest.mark.integration

CHAMPION = f"models:/{TINY_MODEL_NAME}@champion"


def count(results: str) -> int:
    engine = open_results(results)
    with Session(engine) as session:
        n = session.scalar(sa.select(sa.func.count(Score.id)))
    engine.dispose()
    return int(n)


def test_idempotent_and_resumable_on_postgres(tmp_path, tiny_registry, postgres_url):
    folder = make_input(tmp_path / "in")
    crash = write_image(folder / f"z_{CRASH_MARKER}.png", grey=30)
    results = postgres_url("scoring_resume")

    def run() -> dict:
        return score(str(folder), CHAMPION, results, batch_size=3, blob_cache=tmp_path / "cache",
                     tracking_uri=tiny_registry, progress=False)

    with pytest.raises(RuntimeError, match="asked for a crash"):
        run()
    assert count(results) == 6
    crash.unlink()
    assert (run()["scored"], count(results)) == (2, 8)
    again = run()
    assert (again["scored"], again["already_scored"], count(results)) == (0, 8, 8)


def test_concurrent_runs_never_write_a_score_twice(tmp_path, tiny_registry, postgres_url):
    folder = make_input(tmp_path / "in")
    for i in range(16):
        write_image(folder / "more" / f"img_{i:02d}.png", grey=11 + 13 * i)  # no grey of make_input: all distinct
    results = postgres_url("scoring_race")
    open_results(results).dispose()  # create the tables once, before the racing runs
    outcomes: list[dict] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            outcomes.append(score(str(folder), CHAMPION, results, batch_size=2, blob_cache=tmp_path / "cache",
                                  tracking_uri=tiny_registry, progress=False))
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert count(results) == 24
    assert sum(o["scored"] for o in outcomes) == 24  # rows skipped on conflict are not counted


def test_real_model_pyfunc_and_onnx_bundle_agree(tmp_path, defect_model, edge_bundle, postgres_url):
    folder = tmp_path / "boards"
    folder.mkdir()
    for image in defect_model.images[:12]:
        shutil.copy(image, folder / image.name)
    pyfunc_db, onnx_db = postgres_url("scoring_pyfunc"), postgres_url("scoring_onnx")

    via_pyfunc = score(str(folder), defect_model.model_uri, pyfunc_db, batch_size=5, blob_cache=tmp_path / "c",
                       tracking_uri=defect_model.tracking_uri, progress=False)
    via_onnx = score(str(folder), str(edge_bundle), onnx_db, batch_size=5, blob_cache=tmp_path / "c",
                     progress=False)

    assert via_pyfunc["scored"] == via_onnx["scored"] == 12
    assert (via_onnx["model_name"], via_onnx["model_version"]) == (defect_model.name, defect_model.version)

    def by_sha(url: str) -> dict[str, Score]:
        engine = open_results(url)
        with Session(engine) as session:
            rows = {r.sha256: r for r in session.scalars(sa.select(Score))}
        engine.dispose()
        return rows

    a, b = by_sha(pyfunc_db), by_sha(onnx_db)
    assert set(a) == set(b)
    for sha in a:
        assert a[sha].probability == pytest.approx(b[sha].probability, abs=1e-4)
        assert a[sha].decision == b[sha].decision


def test_blob_prefix_input_via_azurite(tmp_path, tiny_registry, postgres_url, azurite, blob_container, monkeypatch):
    """azure://container/prefix: blobs (metadata as labels) are downloaded once into the cache and scored."""
    from tests.fixtures.azurite import upload_folder

    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    upload_folder(blob_container, make_input(tmp_path / "local"), prefix="plant1/", metadata_from_labels=True)
    results = postgres_url("scoring_blob")
    spec = f"azure://{blob_container.container_name}/plant1"

    def run() -> dict:
        return score(spec, CHAMPION, results, batch_size=4, blob_cache=tmp_path / "cache",
                     tracking_uri=tiny_registry, progress=False)

    first = run()
    assert (first["source"], first["scored"]) == (spec, 8)
    engine = open_results(results)
    with Session(engine) as session:
        # Blob ingestion turns metadata into labels.csv rows only for labelled blobs (bright_0..2 here).
        bright0 = session.scalars(sa.select(Score).where(Score.image == "cam2/bright_0.png")).one()
        assert (bright0.board_id, bright0.camera_id, bright0.decision) == ("B0", "cam2", "pass")
        assert bright0.captured_at.replace(tzinfo=None).isoformat() == "2026-10-01T07:00:00"
    engine.dispose()
    assert (run()["scored"], count(results)) == (0, 8)
