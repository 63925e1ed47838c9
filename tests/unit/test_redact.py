"""Passwords in URLs never reach summaries, stored files or error messages."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from defectflow.cli import main
from defectflow.errors import ConfigError, RegistryUnavailableError
from defectflow.redact import http_credentials, redact_url, scrub
from defectflow.registry.tracking import tracking_reachable
from defectflow.scoring.results import open_results
from tests.fixtures.services import free_port

# Passwords SQLAlchemy accepts raw that urllib.parse misreads (/, ?, #) or chokes on ([).
DB_CASES = [
    ("postgresql+psycopg2://u:S3cret/x@127.0.0.1:5432/db", "postgresql+psycopg2://u:***@127.0.0.1:5432/db"),
    ("postgresql+psycopg2://u:S3c?ret#x@db.example:5432/db", "postgresql+psycopg2://u:***@db.example:5432/db"),
    ("postgresql://u:S3c[ret@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:S3c@ret@h:5432/db", "postgresql://u:***@h:5432/db"),
    ("postgresql://u:S3c%2Fret@h/db", "postgresql://u:***@h/db"),
    ("sqlite:////tmp/S3cret/mlflow.db", "sqlite:////tmp/S3cret/mlflow.db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
]
HTTP_CASES = [
    ("http://user:S3cret@mlflow:8080", "http://user:***@mlflow:8080"),
    ("https://user:S3c/r?e#t@mlflow.example/api", "https://user:***@mlflow.example/api"),
    ("http://mlflow:8080/path?owner=a@b", "http://mlflow:***@b"),  # ambiguous: masks more, never less
    ("http://mlflow/path?owner=a@b", "http://mlflow/path?owner=a@b"),
    ("http://user@mlflow", "http://user@mlflow"),
]


@pytest.mark.parametrize(("url", "shown"), DB_CASES + HTTP_CASES)
def test_redact_url(url, shown):
    assert redact_url(url) == shown


def test_redact_url_takes_a_sqlalchemy_url_and_plain_paths():
    assert redact_url(sa.engine.make_url("postgresql://u:S3cret@h/db")) == "postgresql://u:***@h/db"
    assert redact_url("/var/mlruns") == "/var/mlruns"


def test_scrub_masks_every_form_of_the_password():
    url = "http://user:S3c/ret@h:1"
    text = f"GET {url}/api failed; password S3c/ret, quoted S3c%2Fret"
    assert "S3c" not in scrub(text, url)


def test_http_credentials_split_the_user_info_off():
    assert http_credentials("http://u:p%40ss/x@h:1/api") == ("http://h:1/api", "u", "p@ss/x")
    assert http_credentials("http://h:1") == ("http://h:1", None, None)


def test_unusable_results_url_does_not_echo_the_password():
    with pytest.raises(ConfigError) as err:
        open_results("postgresq://u:S3cret/x@127.0.0.1:5432/db")
    assert "S3cret" not in str(err.value) and "u:***@" in str(err.value)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_unreachable_tracking_server_fails_fast_without_the_password(scheme):
    uri = f"{scheme}://user:S3c/ret@127.0.0.1:{free_port()}"
    start = time.monotonic()
    with pytest.raises(RegistryUnavailableError) as err:
        tracking_reachable(uri)
    assert time.monotonic() - start < 10
    assert "S3c" not in str(err.value) and "user:***@127.0.0.1" in str(err.value)


def test_unreachable_tracking_database_fails_fast_without_the_password():
    with pytest.raises(RegistryUnavailableError) as err:
        tracking_reachable(f"postgresql+psycopg2://u:S3cret/x@127.0.0.1:{free_port()}/db")
    assert "S3cret" not in str(err.value)


@pytest.mark.parametrize("command", ["register", "pipeline"])
def test_commands_stop_at_once_when_the_registry_is_down(tmp_path, capsys, monkeypatch, command):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://user:S3cret@127.0.0.1:{free_port()}")
    data, work = tmp_path / "data", tmp_path / "work"
    data.mkdir()
    if command == "register":
        (work / "metrics").mkdir(parents=True)
        (work / "metrics" / "cv.json").write_text('{"gate": {"passed": true, "reasons": []}}')
    start = time.monotonic()
    assert main([command, "--data", str(data), "--workdir", str(work)]) == 7
    err = capsys.readouterr().err
    assert time.monotonic() - start < 60  # MLflow's own retries took ~250 s; imports alone can take 20 s here
    assert "unreachable" in err and "S3cret" not in err and "Traceback" not in err
    assert sorted(p.name for p in work.rglob("*")) == (["cv.json", "metrics"] if command == "register" else [])
