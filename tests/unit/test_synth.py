"""The demo dataset generator: contract of labels.csv, determinism, drift, safety, CLI."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import inspect
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from defectflow.cli import main
from defectflow.errors import ConfigError
from defectflow.params import Params, SynthParams
from defectflow.synth import LABELS_FILE, generate
from defectflow.synth.defects import DEFECT_TYPES

REPO = Path(__file__).resolve().parents[2]


def read_labels(folder: Path) -> list[dict[str, str]]:
    with open(folder / LABELS_FILE, newline="") as fh:
        return list(csv.DictReader(fh))


def digest_folder(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def mean_rgb(folder: Path, rows: list[dict[str, str]]) -> np.ndarray:
    return np.mean([np.asarray(Image.open(folder / r["image"]), dtype=np.float64).mean(axis=(0, 1)) for r in rows],
                   axis=0)


def test_params_section_matches_generate_keywords():
    section = yaml.safe_load((REPO / "params.yaml").read_text())["synth"]
    fields = {f.name for f in dataclasses.fields(SynthParams)}
    assert set(section) == fields
    assert fields <= set(inspect.signature(generate).parameters)
    assert Params.load(REPO / "params.yaml").section("synth", SynthParams) == SynthParams(**section)


def test_same_seed_gives_same_bytes(make_dataset):
    a = make_dataset(n=20, seed=3, image_size=48)
    b = make_dataset(n=20, seed=3, image_size=48)
    c = make_dataset(n=20, seed=4, image_size=48)
    assert digest_folder(a) == digest_folder(b)
    assert digest_folder(a)[LABELS_FILE] != digest_folder(c)[LABELS_FILE]


def test_labels_csv_contract(tiny_dataset):
    rows = read_labels(tiny_dataset)
    assert len(rows) == 120
    assert list(rows[0]) == ["image", "label", "captured_at", "board_id", "camera_id", "defect"]
    assert {r["label"] for r in rows} == {"pass", "fail"}
    assert len({r["camera_id"] for r in rows}) == 2
    per_board = {}
    for r in rows:
        per_board.setdefault(r["board_id"], []).append(r)
    assert max(len(v) for v in per_board.values()) >= 3, "boards are imaged several times"
    for r in rows[:20]:
        assert "/" in r["image"] and not r["image"].startswith("/")
        with Image.open(tiny_dataset / r["image"]) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (64, 64))
    files = {p.relative_to(tiny_dataset).as_posix() for p in tiny_dataset.rglob("*.png")}
    assert files == {r["image"] for r in rows}


def test_captured_at_spread_over_the_days_in_order(tiny_dataset):
    times = [datetime.fromisoformat(r["captured_at"]) for r in read_labels(tiny_dataset)]
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0 for t in times)
    assert times == sorted(times)
    assert times[0] >= datetime(2026, 9, 1, tzinfo=UTC)
    assert times[-1] < datetime(2026, 9, 21, tzinfo=UTC)
    assert (times[-1] - times[0]).days >= 14, "20 days requested: the span must be weeks, not hours"


def test_defect_mix_and_label_noise(tiny_dataset, make_dataset):
    rows = read_labels(tiny_dataset)
    defects = {r["defect"] for r in rows if r["defect"]}
    assert defects <= set(DEFECT_TYPES) and len(defects) >= 4
    share_fail = sum(r["label"] == "fail" for r in rows) / len(rows)
    assert 0.15 < share_fail < 0.45

    flipped = read_labels(make_dataset(n=30, image_size=48, label_noise=1.0))
    assert all((r["label"] == "fail") == (r["defect"] == "") for r in flipped)
    clean = read_labels(make_dataset(n=30, image_size=48, defect_rate=0.0, label_noise=0.0))
    assert {r["label"] for r in clean} == {"pass"} and not any(r["defect"] for r in clean)


def test_unlabelled_share_leaves_labels_empty(make_dataset):
    rows = read_labels(make_dataset(n=60, image_size=32, unlabelled_share=0.5))
    empty = sum(r["label"] == "" for r in rows)
    assert 15 <= empty <= 45
    assert {r["label"] for r in rows} == {"", "pass", "fail"}


@pytest.mark.parametrize("kind", ["lighting", "camera"])
def test_drift_changes_images_only_after_the_date(make_dataset, kind):
    base = make_dataset(n=40, days=10, image_size=48)
    drifted = make_dataset(n=40, days=10, image_size=48, drift_from="2026-09-06", drift_kind=kind)
    rows_base, rows_drift = read_labels(base), read_labels(drifted)
    cut = datetime(2026, 9, 6, tzinfo=UTC)
    before = [i for i, r in enumerate(rows_base) if datetime.fromisoformat(r["captured_at"]) < cut]
    after = [i for i, r in enumerate(rows_base) if datetime.fromisoformat(r["captured_at"]) >= cut]
    assert before and after
    for i in before:  # identical plan and pixels before the drift date
        assert rows_base[i] == rows_drift[i]
        assert (base / rows_base[i]["image"]).read_bytes() == (drifted / rows_drift[i]["image"]).read_bytes()
    rgb_base = mean_rgb(base, [rows_base[i] for i in after])
    rgb_drift = mean_rgb(drifted, [rows_drift[i] for i in after])
    if kind == "lighting":  # warm colour cast and darker
        assert rgb_drift[0] / rgb_drift[2] > 1.3 * rgb_base[0] / rgb_base[2]
        assert rgb_drift.mean() < rgb_base.mean()
    else:
        assert {rows_drift[i]["camera_id"] for i in after} == {"cam-9"}
        assert not np.allclose(rgb_base, rgb_drift, atol=1.0)


def test_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    (tmp_path / "precious.txt").write_text("real data")
    with pytest.raises(ConfigError, match="not empty"):
        generate(tmp_path, 5, 1, image_size=48)
    assert (tmp_path / "precious.txt").read_text() == "real data"
    assert not (tmp_path / LABELS_FILE).exists()


def test_rerun_replaces_an_earlier_output_without_stale_images(tmp_path):
    generate(tmp_path, 30, 1, image_size=48)
    generate(tmp_path, 10, 2, image_size=48)
    rows = read_labels(tmp_path)
    assert len(rows) == 10
    assert {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png")} == {r["image"] for r in rows}


def test_interrupted_run_leaves_no_labels_csv(tmp_path):
    generate(tmp_path, 10, 1, image_size=48)

    def stop_after_five(done: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate(tmp_path, 10, 2, image_size=48, progress=stop_after_five)
    assert not (tmp_path / LABELS_FILE).exists(), "an old labels.csv would point at replaced images"
    assert not list(tmp_path.rglob("*.tmp")), "no temporary files left behind"


@pytest.mark.parametrize("bad, message", [
    (dict(n=0), "n must be at least 1"),
    (dict(defect_rate=1.5), "defect_rate"),
    (dict(drift_kind="fog"), "drift_kind"),
    (dict(start="first of September"), "ISO-8601"),
    (dict(cameras=7), "cameras"),
])
def test_invalid_parameters_are_reported(tmp_path, bad, message):
    args = dict(n=5, seed=1, image_size=48) | bad
    with pytest.raises(ConfigError, match=message):
        generate(tmp_path / "out", **args)
    assert not (tmp_path / "out").exists()


def test_cli_synth_writes_dataset_and_json_summary(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no ./params.yaml: the dataclass defaults apply, then the flags
    out = tmp_path / "demo"
    rc = main(["synth", "--out", str(out), "--n", "12", "--seed", "3", "--set", "synth.image_size=48",
               "--drift-from", "2026-09-20", "--drift-kind", "camera", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["n"] == 12 and summary["params"]["image_size"] == 48
    assert summary["params"]["drift_kind"] == "camera"
    assert len(read_labels(out)) == 12

    rc = main(["synth", "--out", str(tmp_path / "bad"), "--n", "5", "--set", "synth.defect_rate=2"])
    assert rc == 2
    assert "defect_rate" in capsys.readouterr().err


def test_defect_boxes_are_written_and_cover_the_drawn_defect(tiny_dataset):
    """defects.json has a box for (nearly) every defective part, inside the image; the box is where
    the defective scene differs from the same scene without the defect, and good parts have none."""
    from defectflow.synth.dataset import DEFECTS_FILE
    from defectflow.synth.plan import make_plan
    from defectflow.synth.render import render_with_box

    defects = json.loads((tiny_dataset / DEFECTS_FILE).read_text())
    rows = list(csv.DictReader((tiny_dataset / LABELS_FILE).open()))
    with_defect = [r["image"] for r in rows if r["defect"]]
    assert defects["image_size"] == 64
    assert set(defects["boxes"]) <= set(with_defect)
    assert len(defects["boxes"]) >= 0.9 * len(with_defect)
    for entry in defects["boxes"].values():
        x0, y0, x1, y1 = entry["box"]
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64 and entry["defect"] in DEFECT_TYPES
    # the box does not change the image, and a good part gets no box
    spec = next(s for s in make_plan(20, 3, days=5, start="2026-09-01", defect_rate=0.5, label_noise=0.0,
                                     drift_from=None, drift_kind="lighting", unlabelled_share=0.0, cameras=1)
                if not s.defect)
    image, box = render_with_box(spec, 3, 64, want_box=True)
    assert box is None and np.array_equal(image, render_with_box(spec, 3, 64)[0])
