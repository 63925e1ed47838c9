"""The validate stage on a generated bad-input corpus: every bad case gets its specific reason.

The corpus is written with Pillow into a temporary folder: a set of good images in every
contract format and several pixel modes, plus one file (or labels.csv row) per bad case.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from defectflow.cli import validate_cmd
from defectflow.errors import DataQualityError
from defectflow.params import ValidateParams
from defectflow.validation.convert import to_rgb
from defectflow.validation.labels import LabelsFileMissingError, LabelsFormatError
from defectflow.validation.manifest import MANIFEST_COLUMNS, read_manifest
from defectflow.validation.stage import validate
from defectflow.workdir import Workdir

NOW = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
# Small limits so bombs and oversize images stay tiny on disk.
PARAMS = ValidateParams(max_bad_share=1.0, max_pixels=100_000, min_side=16, max_side=300,
                        max_future_minutes=10, min_class_share=0.02, workers=4)


def _noise(seed: int, size: tuple[int, int] = (24, 20), channels: int = 3) -> np.ndarray:
    shape = (size[1], size[0], channels) if channels > 1 else (size[1], size[0])
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _save(path: Path, image: Image.Image, fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt)
    return path


def _stamp(day: int) -> str:
    return (datetime(2026, 9, 1, 8, 0) + timedelta(days=day)).isoformat()  # naive: read as UTC


def build_corpus(root: Path) -> tuple[Path, dict[str, str | None]]:
    """Write the corpus; return (data_dir, expected reason per labels.csv image cell)."""
    data = root / "data"
    rows: list[tuple[str, str, str, str]] = []
    expected: dict[str, str | None] = {}

    def add(image: str, label: str, captured_at: str, reason: str | None, board: str = "") -> None:
        rows.append((image, label, captured_at, board or f"b{len(rows) % 7}"))
        expected[image] = reason

    # Good images: every contract format, nested folders, mixed label spelling.
    formats = [("png", "PNG"), ("jpg", "JPEG"), ("bmp", "BMP"), ("tif", "TIFF")]
    for i in range(24):
        ext, fmt = formats[i % 4]
        name = f"good/{ext}/img_{i:02d}.{ext}"
        _save(data / name, Image.fromarray(_noise(i)), fmt)
        label = ["pass", "fail", " PASS ", "Fail"][i % 4]
        add(name, label, _stamp(i), None)
    _save(data / "good/unlabelled.png", Image.fromarray(_noise(100)))
    add("good/unlabelled.png", "", _stamp(30), None)

    # Convertible modes: accepted, original mode recorded.
    _save(data / "modes/grey.png", Image.fromarray(_noise(200, channels=1), "L"))
    _save(data / "modes/grey_alpha.png", Image.fromarray(_noise(201, channels=2), "LA"))
    _save(data / "modes/rgba.png", Image.fromarray(_noise(202, channels=4), "RGBA"))
    _save(data / "modes/palette.png", Image.fromarray(_noise(203)).convert("P"))
    _save(data / "modes/sixteen.png", Image.fromarray(_noise(204, channels=1).astype(np.uint16) * 257))
    _save(data / "modes/cmyk.jpg", Image.fromarray(_noise(205, channels=4), "CMYK"), "JPEG")
    _save(data / "modes/cmyk.tif", Image.fromarray(_noise(206, channels=4), "CMYK"), "TIFF")
    for i, name in enumerate(sorted(p.relative_to(data).as_posix() for p in (data / "modes").iterdir())):
        add(name, "pass" if i % 2 else "fail", _stamp(31 + i), None)

    # Bad files, one per reason.
    (data / "bad").mkdir()
    (data / "bad/empty.png").write_bytes(b"")
    add("bad/empty.png", "pass", _stamp(1), "zero_byte")
    (data / "bad/notes.png").write_text("this is a text file with an image extension\n")
    add("bad/notes.png", "pass", _stamp(1), "not_an_image")
    buf = io.BytesIO()
    Image.fromarray(_noise(300, (64, 64))).save(buf, "PNG")
    (data / "bad/truncated.png").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    add("bad/truncated.png", "fail", _stamp(2), "truncated")
    buf = io.BytesIO()
    Image.fromarray(_noise(301, (64, 64))).save(buf, "JPEG")
    (data / "bad/truncated.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    add("bad/truncated.jpg", "fail", _stamp(2), "truncated")
    # 320x320 = 102,400 px: above max_pixels, below Pillow's own 2x error (its warning path)...
    _save(data / "bad/bomb_warn.png", Image.new("L", (320, 320)))
    add("bad/bomb_warn.png", "pass", _stamp(3), "decompression_bomb")
    # ...and 500x500 = 250,000 px: Pillow itself raises DecompressionBombError on open.
    _save(data / "bad/bomb_error.png", Image.new("L", (500, 500)))
    add("bad/bomb_error.png", "pass", _stamp(3), "decompression_bomb")
    _save(data / "bad/wide.png", Image.fromarray(_noise(302, (301, 20))))
    add("bad/wide.png", "pass", _stamp(4), "too_large")
    _save(data / "bad/tiny.png", Image.fromarray(_noise(303, (8, 40))))
    add("bad/tiny.png", "pass", _stamp(4), "too_small")
    floats = np.random.default_rng(5).random((20, 20), dtype=np.float32)
    _save(data / "bad/float.tif", Image.fromarray(floats, "F"), "TIFF")
    add("bad/float.tif", "pass", _stamp(5), "unsupported_mode")
    _save(data / "bad/anim.gif", Image.fromarray(_noise(304)).convert("P"), "GIF")
    add("bad/anim.gif", "pass", _stamp(5), "unsupported_format")
    _save(data / "bad/label.png", Image.fromarray(_noise(305)))
    add("bad/label.png", "maybe", _stamp(6), "unknown_label")
    _save(data / "bad/na_label.png", Image.fromarray(_noise(306)))
    add("bad/na_label.png", "NA", _stamp(6), "unknown_label")
    _save(data / "bad/when.png", Image.fromarray(_noise(307)))
    add("bad/when.png", "pass", "yesterday", "bad_timestamp")
    _save(data / "bad/no_time.png", Image.fromarray(_noise(308)))
    add("bad/no_time.png", "pass", "", "bad_timestamp")
    _save(data / "bad/future.png", Image.fromarray(_noise(309)))
    add("bad/future.png", "pass", (NOW + timedelta(days=1)).isoformat(), "future_timestamp")
    add("bad/absent.png", "pass", _stamp(7), "missing_file")

    # Duplicates: conflicting labels → every copy out; agreeing → the earliest capture kept,
    # even though the later copy comes first in labels.csv.
    twin = Image.fromarray(_noise(400))
    _save(data / "dup/conflict_a.png", twin)
    _save(data / "dup/conflict_b.png", twin)
    add("dup/conflict_a.png", "pass", _stamp(8), "duplicate_conflicting_labels")
    add("dup/conflict_b.png", "fail", _stamp(9), "duplicate_conflicting_labels")
    same = Image.fromarray(_noise(401))
    _save(data / "dup/late_copy.png", same)
    _save(data / "dup/early_copy.png", same)
    add("dup/late_copy.png", "fail", _stamp(20), "duplicate_content")
    add("dup/early_copy.png", "fail", _stamp(10), None)

    # Paths that leave the data folder.
    outside = root / "outside"
    _save(outside / "secret.png", Image.fromarray(_noise(500)))
    add("../outside/secret.png", "pass", _stamp(11), "path_escape")
    add(str(outside / "secret.png"), "pass", _stamp(11), "path_escape")
    add("good/../../outside/secret.png", "pass", _stamp(11), "path_escape")
    os.symlink(outside / "secret.png", data / "bad/link.png")
    add("bad/link.png", "pass", _stamp(12), "symlink_outside")
    os.symlink(outside, data / "linked_dir")
    add("linked_dir/secret.png", "pass", _stamp(12), "symlink_outside")

    frame = pd.DataFrame(rows, columns=["image", "label", "captured_at", "board_id"])
    frame["camera_id"] = "cam1"
    frame["operator"] = "ignored extra column"
    frame.to_csv(data / "labels.csv", index=False)
    # A short row (fields missing at the end): empty cells, not the text "nan".
    _save(data / "bad/ragged.png", Image.fromarray(_noise(600)))
    with open(data / "labels.csv", "a") as fh:
        fh.write("bad/ragged.png,pass\n")
    expected["bad/ragged.png"] = "bad_timestamp"
    return data, expected


def tree_hashes(*roots: Path) -> dict[str, str]:
    """sha256 of every regular file (following nothing) under the roots."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def validated(corpus, tmp_path_factory):
    data, expected = corpus
    before = tree_hashes(data.parent)
    workdir = Workdir(tmp_path_factory.mktemp("work"))
    report = validate(data, workdir, PARAMS, now=NOW)
    return report, workdir, before


def test_every_bad_case_gets_its_specific_reason(corpus, validated):
    data, expected = corpus
    _, workdir, _ = validated
    manifest = read_manifest(workdir.manifest)
    assert len(manifest) == len(expected)
    raw_by_row = list(expected)  # labels.csv order == manifest order
    got = {raw: (None if pd.isna(r) else r) for raw, r in zip(raw_by_row, manifest["reason"], strict=True)}
    assert got == expected
    assert (manifest["status"] == "ok").tolist() == [r is None for r in expected.values()]
    # Every reason code the stage knows appears in this corpus.
    from defectflow.validation.reasons import Reason
    assert {str(r) for r in Reason} == {r for r in expected.values() if r}


def test_manifest_columns_and_values(corpus, validated):
    _, workdir, _ = validated
    manifest = read_manifest(workdir.manifest)
    assert tuple(manifest.columns) == MANIFEST_COLUMNS
    ok = manifest[manifest["status"] == "ok"]
    assert set(ok["label"].dropna()) == {"pass", "fail"}  # " PASS " and "Fail" normalised
    assert ok["label"].isna().sum() == 1
    assert str(manifest["captured_at"].dtype) == "datetime64[us, UTC]"
    first = manifest.iloc[0]
    assert first["captured_at"] == pd.Timestamp("2026-09-01T08:00:00Z")  # naive read as UTC
    assert first["sha256"] == hashlib.sha256((corpus[0] / first["path"]).read_bytes()).hexdigest()
    assert (first["width"], first["height"], first["bytes"]) == (24, 20, (corpus[0] / first["path"]).stat().st_size)
    assert (manifest["camera_id"].iloc[:-1] == "cam1").all()
    assert manifest.loc[manifest["path"] == "dup/early_copy.png", "status"].item() == "ok"
    ragged = manifest.iloc[-1]
    assert ragged["board_id"] == ragged["path"] == "bad/ragged.png" and pd.isna(ragged["camera_id"])
    escaped = manifest[manifest["reason"] == "path_escape"]
    assert escaped["sha256"].isna().all()  # never read


def test_convertible_modes_are_accepted_with_original_mode(validated):
    _, workdir, _ = validated
    manifest = read_manifest(workdir.manifest).set_index("path")
    modes = {"modes/grey.png": "L", "modes/grey_alpha.png": "LA", "modes/rgba.png": "RGBA",
             "modes/palette.png": "P", "modes/sixteen.png": "I;16", "modes/cmyk.jpg": "CMYK",
             "modes/cmyk.tif": "CMYK"}
    for path, mode in modes.items():
        assert manifest.loc[path, "status"] == "ok", manifest.loc[path, "detail"]
        assert manifest.loc[path, "mode"] == mode


def test_sixteen_bit_is_scaled_not_clipped():
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(values)))
    assert rgb.shape == (1, 4, 3)
    assert rgb[0, :, 0].tolist() == [0, 1, 128, 255]


def test_reports_exist_parse_and_count(validated, corpus):
    report, workdir, _ = validated
    _, expected = corpus
    saved = json.loads(workdir.validation_report.read_text())
    assert saved == json.loads(json.dumps(report, default=str))
    counts = saved["counts"]
    n_bad = sum(r is not None for r in expected.values())
    assert counts["total"] == len(expected) and counts["quarantined"] == n_bad
    assert counts["ok"] + counts["quarantined"] == counts["total"]
    assert counts["labelled"] + counts["unlabelled"] == counts["ok"]
    assert saved["share_bad"] == pytest.approx(n_bad / len(expected))
    assert saved["by_reason"]["path_escape"] == 3
    assert {q["path"] for q in saved["quarantined"]} >= {"bad/empty.png", "bad/link.png"}
    assert all(q["detail"] for q in saved["quarantined"])
    gx = saved["great_expectations"]
    assert gx["success"] is True
    checked = {(e["expectation"], e["kwargs"].get("column")) for e in gx["expectations"]}
    assert ("expect_column_values_to_be_in_set", "label") in checked
    assert ("expect_compound_columns_to_be_unique", None) in checked
    raw = json.loads(workdir.gx_report.with_suffix(".json").read_text())
    assert raw["statistics"]["evaluated_expectations"] == len(gx["expectations"])
    html = workdir.gx_report.read_text()
    assert html.startswith("<!doctype html>") and "expect_column_max_to_be_between" in html


def test_input_files_are_never_modified(corpus, validated):
    data, _ = corpus
    _, _, before = validated
    assert tree_hashes(data.parent) == before


def test_output_is_deterministic(corpus, validated, tmp_path):
    data, _ = corpus
    report, workdir, _ = validated
    other = Workdir(tmp_path / "again")
    again = validate(data, other, dataclasses.replace(PARAMS, workers=1), now=NOW)
    assert workdir.manifest.read_bytes() == other.manifest.read_bytes()
    strip = lambda r: {k: v for k, v in r.items() if k not in ("outputs", "params")}  # noqa: E731
    assert strip(again) == strip(report)


def test_too_many_quarantined_fails_after_writing_everything(corpus, tmp_path):
    data, expected = corpus
    workdir = Workdir(tmp_path / "work")
    with pytest.raises(DataQualityError) as err:
        validate(data, workdir, dataclasses.replace(PARAMS, max_bad_share=0.05), now=NOW)
    message = str(err.value)
    assert "path_escape 3" in message and "max_bad_share" in message
    assert str(workdir.validation_report) in message
    assert len(read_manifest(workdir.manifest)) == len(expected)
    assert json.loads(workdir.validation_report.read_text())["counts"]["total"] == len(expected)
    assert workdir.gx_report.exists()


def _write_set(data: Path, labels: list[str], header: str = "image,label,captured_at") -> None:
    lines = [header]
    for i, label in enumerate(labels):
        _save(data / f"i{i}.png", Image.fromarray(_noise(1000 + i)))
        lines.append(f"i{i}.png,{label},{_stamp(i)}")
    (data / "labels.csv").write_text("\n".join(lines) + "\n")


def test_degenerate_class_balance_fails(tmp_path):
    _write_set(tmp_path / "d", ["pass"] * 30 + ["fail"])
    with pytest.raises(DataQualityError, match="class balance is degenerate.*fail 1, pass 30"):
        validate(tmp_path / "d", Workdir(tmp_path / "w"), dataclasses.replace(PARAMS, min_class_share=0.05), now=NOW)
    assert Workdir(tmp_path / "w").manifest.exists()


def test_missing_board_id_uses_path_and_says_so(tmp_path):
    _write_set(tmp_path / "d", ["pass", "fail", ""])
    report = validate(tmp_path / "d", Workdir(tmp_path / "w"), PARAMS, now=NOW)
    manifest = read_manifest(Workdir(tmp_path / "w").manifest)
    assert (manifest["board_id"] == manifest["path"]).all()
    assert manifest["camera_id"].isna().all()
    assert any("board_id" in note for note in report["notes"])
    assert report["counts"]["unlabelled"] == 1


def test_missing_labels_file_and_columns_are_named(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(LabelsFileMissingError, match="image,label,captured_at"):
        validate(tmp_path / "d", Workdir(tmp_path / "w"), PARAMS)
    (tmp_path / "d/labels.csv").write_text("image,label\na.png,pass\n")
    with pytest.raises(LabelsFormatError, match="captured_at.*expected header 'image,label,captured_at"):
        validate(tmp_path / "d", Workdir(tmp_path / "w"), PARAMS)
    assert not (tmp_path / "w").exists()


def test_cli_prints_json_summary(tmp_path, capsys, monkeypatch):
    _write_set(tmp_path / "d", ["pass", "fail", "pass", "maybe"])
    monkeypatch.chdir(tmp_path)  # no ./params.yaml here: the dataclass defaults apply
    parser = argparse.ArgumentParser()
    validate_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["validate", "--data", "d", "--workdir", "w", "--json",
                              "--set", "validate.max_bad_share=0.5"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["counts"]["quarantined"] == 1 and summary["by_reason"] == {"unknown_label": 1}
    text = validate_cmd.format_summary(json.loads((tmp_path / "w/reports/validation.json").read_text()))
    assert "unknown_label" in text and "3 ok" in text
