"""The bench harness on tiny inputs: a report is produced, every ratio is computed from the
medians measured in the same run, targets are judged on those numbers, bad options fail."""

from __future__ import annotations

import json
import math
import statistics

import pytest

from bench.__main__ import load_profile, parse_args, run
from bench.report import to_markdown
from bench.timing import Result, compare, rate_runs


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-out")
    args = parse_args(["--profile", "smoke", "--cases", "ab,c", "--out", str(out), "--quiet",
                       "--scratch", str(tmp_path_factory.mktemp("bench-scratch"))])
    json_path, md_path = run(args)
    return json.loads(json_path.read_text()), md_path.read_text()


def test_report_describes_the_machine_and_has_every_requested_case(smoke_report):
    report, markdown = smoke_report
    machine = report["machine"]
    assert machine["cores"] >= 1 and machine["ram_gib"] > 0 and machine["torch"] and machine["device"] == "cpu"
    assert {r["case"] for r in report["results"]} == {"naive", "a", "b", "c"}
    assert machine["cpu_model"] in markdown and "(a) End-to-end featurization" in markdown


def test_ratios_are_medians_of_measured_runs_against_the_same_runs_naive_baseline(smoke_report):
    report, _ = smoke_report
    rows = {r["name"]: r for r in report["results"]}
    naive = next(r for r in report["results"] if r["case"] == "naive")
    assert len(naive["runs"]) == 2 and all(v > 0 for v in naive["runs"])
    for row in report["results"]:
        assert math.isclose(row["median"], statistics.median(row["runs"]))
        if row["case"] in {"a", "b"}:
            assert row["baseline"] == naive["name"]
            assert math.isclose(row["ratio"], row["median"] / naive["median"])
        if row["case"] == "c" and row["baseline"]:
            assert math.isclose(row["ratio"], row["median"] / rows[row["baseline"]]["median"])


def test_incremental_case_computes_only_the_new_images(smoke_report):
    report, _ = smoke_report
    second = next(r for r in report["results"] if r["name"].startswith("second run"))
    assert second["params"]["new"] == 2 and second["params"]["n"] == 20


def test_targets_are_judged_on_the_measured_numbers(smoke_report):
    report, _ = smoke_report
    e2e = next(r for r in report["results"] if r["case"] == "a")
    by_text = {t["target"]: t for t in report["targets"]}
    naive_target = next(t for text, t in by_text.items() if "naive" in text)
    assert naive_target["measured"] == f"{e2e['ratio']:.2f}×" and naive_target["met"] == (e2e["ratio"] >= 4.0)


def test_compare_and_rate_runs_use_real_timings():
    calls = []
    runs = rate_runs(lambda: calls.append(1) or 10, repeats=3)
    assert len(runs) == 3 and len(calls) == 4 and all(r > 0 for r in runs)  # one warm-up
    base, fast = Result("a", "base", "images/s", [1.0, 2.0, 3.0]), Result("a", "fast", "images/s", [4.0, 8.0, 6.0])
    compare([base, fast], base)
    assert (base.ratio, fast.ratio, fast.baseline) == (1.0, 3.0, "base")


def test_markdown_shows_skipped_cases_without_inventing_numbers():
    report = {"profile": "smoke", "machine_summary": "m", "elapsed_s": 1.0, "where_time_goes": None, "targets": [],
              "config": {}, "machine": {"device": "cpu", "python": "3", "torchvision": "0", "pillow": "0",
                                        "cpu_flags": [], "load_average_at_start": None},
              "results": [Result("d", "LightGBM training", "s", [float("nan")], note="skipped: no lightgbm").to_dict()]}
    assert "| LightGBM training | – | s | – | – | – | skipped: no lightgbm |" in to_markdown(report)


def test_profiles_and_overrides(tmp_path):
    cfg = load_profile("smoke", ["repeats=5", "backbones=[\"resnet50\"]", "device=cuda:1"])
    assert cfg["repeats"] == 5 and cfg["backbones"] == ["resnet50"] and cfg["device"] == "cuda:1"
    with pytest.raises(SystemExit, match="unknown profile 'nope'"):
        load_profile("nope", [])
    with pytest.raises(SystemExit, match="expected key=value"):
        load_profile("smoke", ["repeats"])


def test_finetune_case_times_both_recipes_in_turn_and_compares_their_medians(tmp_path):
    args = parse_args(["--profile", "smoke", "--cases", "f", "--out", str(tmp_path / "out"), "--quiet",
                       "--scratch", str(tmp_path / "scratch")])
    json_path, md_path = run(args)
    rows = json.loads(json_path.read_text())["results"]
    assert [r["case"] for r in rows] == ["f", "f"] and json_path.name.endswith("-f.json")
    base, cached = rows
    assert "every epoch" in base["name"] and "cache_frozen" in cached["name"]
    assert len(base["runs"]) == len(cached["runs"]) == 2 and all(v > 0 for v in base["runs"] + cached["runs"])
    assert cached["baseline"] == base["name"] and math.isclose(cached["ratio"], cached["median"] / base["median"])
    assert "(f) Fine-tuning" in md_path.read_text()
