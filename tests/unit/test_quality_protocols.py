"""The quality benchmark's split protocols (what each ordering means for the time split) and its variants."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.quality.protocols import Protocol, parse_protocols
from bench.quality.variants import VARIANTS, overrides_for
from defectflow.params import FeaturizeParams, Params

PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def test_time_protocol_keeps_index_order_and_modules():
    order, boards = Protocol("time", "time").arrange(np.arange(130) // 60)
    np.testing.assert_array_equal(order, np.arange(130))
    assert boards[59] == boards[0] != boards[60] and boards[129] == "module002"


def test_unseen_protocol_moves_whole_modules_and_depends_on_the_seed():
    order, boards = Protocol("unseen-1", "unseen", 1).arrange(np.arange(600) // 60)
    assert sorted(order) == list(range(600))
    captured = boards[order]
    # Each module's cells are consecutive captures: a time split cuts between modules.
    changes = np.flatnonzero(captured[1:] != captured[:-1])
    assert len(changes) == 9
    assert not np.array_equal(order, np.arange(600))
    other, _ = Protocol("unseen-2", "unseen", 2).arrange(np.arange(600) // 60)
    assert not np.array_equal(order, other)


def test_random_protocol_gives_every_cell_its_own_board():
    order, boards = Protocol("random", "random", 0).arrange(np.arange(200) // 60)
    assert sorted(order) == list(range(200)) and len(set(boards)) == 200


def test_parse_protocols_expands_unseen_per_seed():
    names = [p.name for p in parse_protocols(["time", "unseen", "random"], [3, 4])]
    assert names == ["time", "unseen-3", "unseen-4", "random"]


def test_own_data_folder_gives_labelled_rows_in_capture_order_grouped_by_board(tmp_path):
    from bench.quality.elpv import from_data_folder

    (tmp_path / "labels.csv").write_text(
        "image,label,captured_at,board_id,camera_id\n"
        "b.png,fail,2026-01-02T00:00:00Z,B1,cam2\n"
        "a.png,pass,2026-01-01T00:00:00Z,B0,cam1\n"
        "u.png,,2026-01-01T12:00:00Z,B0,cam1\n"
        "c.png,pass,2026-01-03T00:00:00Z,B1,cam2\n")
    cells = from_data_folder(tmp_path)
    assert cells.paths == ["a.png", "b.png", "c.png"]  # unlabelled row left out, sorted by captured_at
    assert list(cells.labels) == ["pass", "fail", "pass"] and list(cells.types) == ["cam1", "cam2", "cam2"]
    assert cells.modules[1] == cells.modules[2] != cells.modules[0]


def test_every_variant_is_a_valid_params_override():
    # A variant is a list of --set overrides: a misspelt key or value must fail here, not an hour into a run.
    for _, overrides in VARIANTS.values():
        Params.load(PARAMS, overrides).section("featurize", FeaturizeParams)
    assert Params.load(PARAMS, VARIANTS["lite0_448_all_rounds"][1]).tree["featurize"]["image_size"] == 448
    with pytest.raises(SystemExit, match="unknown variant"):
        overrides_for(["baseline", "no_such_variant"])
