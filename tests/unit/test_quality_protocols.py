"""The quality benchmark's split protocols: what each ordering means for the time split."""

from __future__ import annotations

import numpy as np

from bench.quality.protocols import Protocol, parse_protocols


def test_time_protocol_keeps_index_order_and_modules():
    order, boards = Protocol("time", "time").arrange(130, 60)
    np.testing.assert_array_equal(order, np.arange(130))
    assert boards[59] == boards[0] != boards[60] and boards[129] == "module002"


def test_unseen_protocol_moves_whole_modules_and_depends_on_the_seed():
    order, boards = Protocol("unseen-1", "unseen", 1).arrange(600, 60)
    assert sorted(order) == list(range(600))
    captured = boards[order]
    # Each module's cells are consecutive captures: a time split cuts between modules.
    changes = np.flatnonzero(captured[1:] != captured[:-1])
    assert len(changes) == 9
    assert not np.array_equal(order, np.arange(600))
    other, _ = Protocol("unseen-2", "unseen", 2).arrange(600, 60)
    assert not np.array_equal(order, other)


def test_random_protocol_gives_every_cell_its_own_board():
    order, boards = Protocol("random", "random", 0).arrange(200, 60)
    assert sorted(order) == list(range(200)) and len(set(boards)) == 200


def test_parse_protocols_expands_unseen_per_seed():
    names = [p.name for p in parse_protocols(["time", "unseen", "random"], [3, 4])]
    assert names == ["time", "unseen-3", "unseen-4", "random"]
