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


def test_the_exported_edge_bundle_explains_like_defectflow_explain(trained_pipeline, tmp_path, capsys):
    """The pipeline's model, exported: its graph's patch output + the bundled head give the CLI's
    (torch hook's) anomaly scores and reasons, and the pyfunc's fail probabilities."""
    from defectflow.inference.bundle import EdgeModel
    from defectflow.registry.export import export_bundle

    rows = list(csv.DictReader((trained_pipeline.data_dir / "labels.csv").open()))
    images = [str(trained_pipeline.data_dir / r["image"]) for r in rows[:12]]
    assert main(["explain", "--model", trained_pipeline.challenger_uri, "--tracking-uri",
                 trained_pipeline.tracking_uri, *images, "--out", str(tmp_path / "o"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)["images"]
    export_bundle(trained_pipeline.challenger_uri, tmp_path / "bundle", tracking_uri=trained_pipeline.tracking_uri)
    model = EdgeModel(tmp_path / "bundle")
    assert model.anomaly is not None
    for path, expected in zip(images, cli, strict=True):
        [(pred, why)] = model.explain_decoded([model.decode(open(path, "rb").read())])
        assert pred.fail_probability == pytest.approx(expected["fail_probability"], abs=1e-4)
        assert why.anomaly_score == pytest.approx(expected["anomaly_score"], rel=1e-3)
        assert why.novelty_threshold == pytest.approx(expected["novelty_threshold"])
        assert why.review_reason == pred.reason == expected["reason"]
        assert pred.decision == expected["decision"]
