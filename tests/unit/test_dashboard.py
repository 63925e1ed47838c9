"""The dashboard router in its own FastAPI app, over HTTP (TestClient), on real scores and a real registry."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy.orm import Session

from defectflow.dashboard.reviews import export_labels
from defectflow.dashboard.router import DashboardConfig, dashboard_router
from defectflow.errors import ConfigError
from defectflow.params import DashboardParams
from defectflow.scoring.batch import score
from defectflow.scoring.results import Review, Score, insert_scores, open_results, utcnow
from tests.fixtures.scoring_model import TINY_MODEL_NAME, make_input, write_image


@pytest.fixture
def scored(tmp_path, tiny_registry):
    """An input folder scored by the champion (4 fail, 4 pass) into a SQLite results DB."""
    folder = make_input(tmp_path / "in")
    results = f"sqlite:///{tmp_path / 'results.db'}"
    score(str(folder), f"models:/{TINY_MODEL_NAME}@champion", results, batch_size=4,
          blob_cache=tmp_path / "cache", tracking_uri=tiny_registry, progress=False)
    return folder, results


def client_for(results: str, roots: list[Path], tracking_uri: str, tmp_path: Path) -> TestClient:
    config = DashboardConfig(results_url=results, tracking_uri=tracking_uri, model_name=TINY_MODEL_NAME,
                             image_roots=tuple(roots), blob_cache=tmp_path / "cache", gate_auc=0.90,
                             params=DashboardParams(thumbnail_px=64, registry_cache_seconds=0))
    app = FastAPI()
    app.include_router(dashboard_router(config))
    return TestClient(app)


@pytest.fixture
def client(scored, tiny_registry, tmp_path) -> TestClient:
    folder, results = scored
    return client_for(results, [folder], tiny_registry, tmp_path)


def flagged_ids(html: str) -> list[int]:
    import re

    return [int(i) for i in re.findall(r'data-testid="flagged" data-score-id="(\d+)"', html)]


def test_page_shows_flagged_boards_champion_and_auc_history(client):
    page = client.get("/dashboard")
    assert page.status_code == 200
    html = page.text
    assert len(flagged_ids(html)) == 4
    assert html.count("cam1/dark_") >= 4 and 'data-testid="queue-count">4<' in html
    champion = html[html.index('data-testid="champion"'):html.index("</header>")]
    assert "v2" in champion and "0.940" in champion
    versions = html[html.index('data-testid="versions"'):]
    assert "0.940" in versions and "0.910" in versions and versions.count('class="badge alias">champion<') == 1
    assert "<polyline" in html and "gate 0.90" in html
    assert html.count('class="badge pass">pass<') >= 4  # latest results table lists pass rows too


def test_thumbnail_is_a_small_jpeg(client):
    first = flagged_ids(client.get("/dashboard").text)[0]
    response = client.get(f"/dashboard/thumbnails/{first}")
    assert response.status_code == 200 and response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert max(thumb.size) <= 64
    assert client.get("/dashboard/thumbnails/99999").status_code == 404


def test_thumbnails_never_leave_the_image_roots(scored, tiny_registry, tmp_path):
    folder, results = scored
    secret = write_image(tmp_path / "secret" / "x.png", grey=10)
    engine = open_results(results)
    base = {"sha256": "0" * 64, "probability": 0.9, "decision": "fail", "model_name": "m", "model_version": "1",
            "scored_at": utcnow(), "captured_at": None, "board_id": None, "camera_id": None}
    with Session(engine) as session, session.begin():
        insert_scores(session, [
            {**base, "source": str(folder), "image": "../secret/x.png"},
            {**base, "sha256": "1" * 64, "source": str(secret.parent), "image": "x.png"},
        ])
        escape_id, other_root_id = session.scalars(sa.select(Score.id).where(Score.model_name == "m")
                                                   .order_by(Score.id)).all()
    (folder / "link.png").symlink_to(secret)
    with Session(engine) as session, session.begin():
        insert_scores(session, [{**base, "sha256": "2" * 64, "source": str(folder), "image": "link.png"}])
        link_id = session.scalar(sa.select(Score.id).where(Score.image == "link.png"))
    engine.dispose()
    client = client_for(results, [folder], tiny_registry, tmp_path)

    for score_id, why in ((escape_id, ".."), (other_root_id, "image roots"), (link_id, "symlink")):
        response = client.get(f"/dashboard/thumbnails/{score_id}")
        assert response.status_code == 404 and why in response.json()["detail"]
    assert client.get("/dashboard/static/dashboard.css").status_code == 200
    assert client.get("/dashboard/static/..%2Fapp.py").status_code == 404
    assert client.get("/dashboard/static/router.py").status_code == 404


def test_confirm_and_correct_are_stored_with_who_and_when(client, scored):
    _, results = scored
    first, second = flagged_ids(client.get("/dashboard").text)[:2]

    confirm = client.post("/dashboard/reviews", data={"verdict": f"{first}:fail", "reviewer": " Ana  Lopez ",
                                                      "return_to": "camera=cam1&evil=https://x"},
                          follow_redirects=False)
    assert confirm.status_code == 303 and confirm.headers["location"] == f"/dashboard?camera=cam1&saved={first}"
    correct = client.post("/dashboard/reviews", data={"verdict": f"{second}:pass", "reviewer": "Bo"})
    assert correct.status_code == 200 and "corrected to" in correct.text

    engine = open_results(results)
    with Session(engine) as session:
        reviews = {r.score_id: r for r in session.scalars(sa.select(Review))}
        latest = reviews[first]
        assert (latest.label, latest.reviewer, latest.is_correction) == ("fail", "Ana Lopez", False)
        assert (reviews[second].label, reviews[second].is_correction) == ("pass", True)
        assert reviews[second].reviewed_at is not None
    engine.dispose()
    remaining = flagged_ids(client.get("/dashboard").text)
    assert len(remaining) == 2 and first not in remaining and second not in remaining


def test_bad_reviews_are_refused_with_a_reason(client):
    first = flagged_ids(client.get("/dashboard").text)[0]
    cases = [
        ({"verdict": f"{first}:maybe", "reviewer": "Ana"}, 422, "pass or fail"),
        ({"verdict": f"{first}:fail", "reviewer": "   "}, 422, "operator's name"),
        ({"verdict": "999999:fail", "reviewer": "Ana"}, 422, "no scored image"),
        ({"verdict": "x:fail", "reviewer": "Ana"}, 422, "verdict must look like"),
    ]
    for form, status, message in cases:
        response = client.post("/dashboard/reviews", data=form)
        assert response.status_code == status and message in response.text
    cross = client.post("/dashboard/reviews", data={"verdict": f"{first}:fail", "reviewer": "Ana"},
                        headers={"Origin": "https://elsewhere.example"})
    assert cross.status_code == 403
    assert len(flagged_ids(client.get("/dashboard").text)) == 4


def test_filters_narrow_both_tables_and_bad_dates_are_explained(client):
    assert flagged_ids(client.get("/dashboard", params={"camera": "cam2"}).text) == []
    assert len(flagged_ids(client.get("/dashboard", params={"board": "B1"}).text)) == 1
    # dark_0 was captured 2026-10-01, dark_1 on 10-02 ...; dates filter on captured_at
    filtered = client.get("/dashboard", params={"date_from": "2026-10-02", "date_to": "2026-10-03"}).text
    assert len(flagged_ids(filtered)) == 2
    page = client.get("/dashboard", params={"date_from": "yesterday"})
    assert page.status_code == 200 and "is not a date" in page.text and len(flagged_ids(page.text)) == 4
    older = client.get("/dashboard", params={"model": f"{TINY_MODEL_NAME}/1"})
    assert flagged_ids(older.text) == []  # v1 never scored this input


def test_unreachable_registry_is_a_message_not_an_error(scored, tmp_path, monkeypatch):
    from tests.fixtures.services import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    folder, results = scored
    client = client_for(results, [folder], f"http://user:s3cret@127.0.0.1:{free_port()}", tmp_path)
    page = client.get("/dashboard")
    assert page.status_code == 200 and "unavailable" in page.text and "s3cret" not in page.text
    assert len(flagged_ids(page.text)) == 4


def test_export_labels_writes_the_data_contract(client, scored, tmp_path):
    _, results = scored
    first, second = flagged_ids(client.get("/dashboard").text)[:2]
    client.post("/dashboard/reviews", data={"verdict": f"{first}:fail", "reviewer": "Ana"})
    client.post("/dashboard/reviews", data={"verdict": f"{second}:fail", "reviewer": "Ana"})
    client.post("/dashboard/reviews", data={"verdict": f"{second}:pass", "reviewer": "Bo"})  # changed her mind

    engine = open_results(results)
    with Session(engine) as session:
        images = {i: session.get(Score, i).image for i in (first, second)}
        summary = export_labels(session, tmp_path / "all.csv")
        corrections = export_labels(session, tmp_path / "corrections.csv", only_corrections=True)
    all_rows = list(csv.DictReader((tmp_path / "all.csv").open()))
    assert list(all_rows[0]) == ["image", "label", "captured_at", "board_id", "camera_id"]
    assert {r["image"]: r["label"] for r in all_rows} == {images[first]: "fail", images[second]: "pass"}
    assert all(r["captured_at"].endswith("Z") and r["camera_id"] == "cam1" for r in all_rows)
    assert (summary.rows, summary.corrections, corrections.rows) == (2, 1, 1)
    assert [r["image"] for r in csv.DictReader((tmp_path / "corrections.csv").open())] == [images[second]]

    with Session(engine) as session, session.begin():
        other = Score(source="/elsewhere", image="a.png", sha256="f" * 64, probability=0.9, decision="fail",
                      model_name="m", model_version="1", scored_at=utcnow())
        session.add(other)
        session.add(Review(score=other, label="pass", reviewer="Cy", reviewed_at=utcnow()))
    with Session(engine) as session, pytest.raises(ConfigError, match="--source"):
        export_labels(session, tmp_path / "ambiguous.csv")
    assert not (tmp_path / "ambiguous.csv").exists()
    engine.dispose()


def test_the_scoring_service_mounts_the_dashboard(scored, tiny_registry, tmp_path, monkeypatch):
    """DEFECTFLOW_EXTRA_ROUTERS=defectflow.dashboard.mount:router puts the page on the serving app."""
    import sys

    from defectflow.serving.app import create_app
    from defectflow.serving.settings import ServingSettings

    folder, results = scored
    monkeypatch.setenv("DEFECTFLOW_RESULTS_URL", results)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tiny_registry)
    monkeypatch.setenv("DEFECTFLOW_DASHBOARD_IMAGE_ROOTS", str(folder))
    params = tmp_path / "params.yaml"
    params.write_text(f"register:\n  model_name: {TINY_MODEL_NAME}\ndata:\n  workdir: {tmp_path / 'work'}\n")
    monkeypatch.setenv("DEFECTFLOW_PARAMS", str(params))
    monkeypatch.delitem(sys.modules, "defectflow.dashboard.mount", raising=False)  # fresh lazily built router

    app = create_app(ServingSettings(auth_enabled=False, extra_routers=("defectflow.dashboard.mount:router",)))
    client = TestClient(app)  # no lifespan: the model slot is not started, the dashboard does not need it
    page = client.get("/dashboard")
    assert page.status_code == 200 and len(flagged_ids(page.text)) == 4
    first = flagged_ids(page.text)[0]
    assert client.get(f"/dashboard/thumbnails/{first}").status_code == 200
    assert "/dashboard" not in client.get("/openapi.json").json()["paths"]


def test_a_flagged_card_says_whether_the_classifier_or_the_novelty_rule_flagged_it(tiny_registry, tmp_path):
    """The results DB stores the decision, not its reason: a fail under the version's threshold (the run's
    `threshold` metric) was the novelty rule's. A version whose threshold is unknown gets no reason."""
    import re

    from mlflow import MlflowClient

    from tests.fixtures.scoring_model import register_tiny_model

    name = "tiny-novelty"
    version = register_tiny_model(tiny_registry, 0.93, name=name)
    mlflow_client = MlflowClient(tracking_uri=tiny_registry, registry_uri=tiny_registry)
    mlflow_client.log_metric(mlflow_client.get_model_version(name, version).run_id, "threshold", 0.5)
    folder = tmp_path / "in"
    for image in ("classifier.png", "novel.png", "unknown.png"):
        write_image(folder / image, grey=100)
    results = f"sqlite:///{tmp_path / 'results.db'}"
    engine = open_results(results)
    base = {"source": str(folder), "decision": "fail", "scored_at": utcnow(), "captured_at": None, "board_id": None,
            "camera_id": None}
    with Session(engine) as session, session.begin():
        insert_scores(session, [
            {**base, "image": "classifier.png", "sha256": "a" * 64, "probability": 0.8, "model_name": name,
             "model_version": version},
            {**base, "image": "novel.png", "sha256": "b" * 64, "probability": 0.2, "model_name": name,
             "model_version": version},
            {**base, "image": "unknown.png", "sha256": "c" * 64, "probability": 0.2, "model_name": TINY_MODEL_NAME,
             "model_version": "2"},
        ])
        ids = {s.image: s.id for s in session.scalars(sa.select(Score))}
    engine.dispose()
    client = client_for(results, [folder], tiny_registry, tmp_path)

    def reasons(html: str) -> dict[int, str | None]:
        cards = html.split('data-testid="flagged" data-score-id="')[1:]
        return {int(card.split('"', 1)[0]): (m.group(1) if (m := re.search(r'data-reason="(\w+)"', card)) else None)
                for card in cards}

    page = client.get("/dashboard", params={"model": f"{name}/{version}"})
    assert reasons(page.text) == {ids["classifier.png"]: "classifier", ids["novel.png"]: "novel"}
    assert "unlike every good training image" in page.text
    unknown = client.get("/dashboard", params={"model": f"{TINY_MODEL_NAME}/2"})
    assert reasons(unknown.text) == {ids["unknown.png"]: None}
