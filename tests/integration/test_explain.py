"""`defectflow explain` on the registered model of the real pipeline: overlays and the JSON lines."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from defectflow.cli import main

pytestmark = pytest.mark.integration


def test_explain_writes_an_overlay_per_image_and_reports_the_decision(trained_pipeline, tmp_path, capsys):
    rows = list(csv.DictReader((trained_pipeline.data_dir / "labels.csv").open()))
    picks = [next(r for r in rows if r["label"] == "pass"), next(r for r in rows if r["label"] == "fail")]
    images = [str(trained_pipeline.data_dir / r["image"]) for r in picks]
    out = tmp_path / "overlays"
    code = main(["explain", "--model", trained_pipeline.challenger_uri, "--tracking-uri", trained_pipeline.tracking_uri,
                 *images, "--out", str(out), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert [r["image"] for r in report["images"]] == images
    for row in report["images"]:
        assert 0.0 <= row["fail_probability"] <= 1.0
        assert (row["decision"], row["reason"]) in {("fail", "classifier"), ("fail", "novel"), ("pass", "normal")}
        assert row["anomaly_score"] > 0 and row["novelty_threshold"] > 0
        overlay = np.asarray(Image.open(row["overlay"]))
        size = json.loads((trained_pipeline.workdir / "features.json").read_text())["spec"]["image_size"]
        assert overlay.shape == (size, size, 3)
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{r['image'].split('/')[-1][:-4]}.png" for r in picks)


def test_explain_refuses_missing_images(trained_pipeline, tmp_path, capsys):
    code = main(["explain", "--model", trained_pipeline.challenger_uri, str(tmp_path / "nope.png"),
                 "--out", str(tmp_path / "o")])
    assert code == 2 and "not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
