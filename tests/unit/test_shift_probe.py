"""The shift probe's per-camera centring: the causal rule sees only images scored before."""

from __future__ import annotations

import numpy as np

from bench.quality.shift_probe import Context, centred


def _setup(n_train: int = 40, n_test: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_train + n_test, 3))
    cameras = np.array(["mono", "poly"] * ((n_train + n_test) // 2))
    X[cameras == "poly"] += 5.0  # a camera offset the centring must remove
    position = np.arange(n_train + n_test)
    ctx = Context(cameras, position, np.ones(n_train + n_test))
    return X, np.arange(n_train), np.arange(n_train, n_train + n_test), ctx


def test_centring_removes_the_camera_offset_on_both_sides():
    X, tr, te, ctx = _setup()
    for rule in ("train", "causal", "window"):
        a, b = centred(X[tr], X[te], tr, te, ctx, rule, prior=5.0)
        for side, idx in ((a, tr), (b, te)):
            poly = ctx.cameras[idx] == "poly"
            assert abs(side[poly].mean() - side[~poly].mean()) < 1.5, rule


def test_causal_centring_never_looks_ahead():
    X, tr, te, ctx = _setup()
    _, before = centred(X[tr], X[te], tr, te, ctx, "causal", prior=5.0)
    changed = X.copy()
    changed[te[-1]] += 100.0  # the last image scored changes
    _, after = centred(changed[tr], changed[te], tr, te, ctx, "causal", prior=5.0)
    np.testing.assert_array_equal(before[:-1], after[:-1])
    assert not np.allclose(before[-1], after[-1])
    # The transductive rule does look ahead: that is why it is only an upper bound.
    _, w_before = centred(X[tr], X[te], tr, te, ctx, "window", prior=5.0)
    _, w_after = centred(changed[tr], changed[te], tr, te, ctx, "window", prior=5.0)
    assert not np.allclose(w_before[:-2], w_after[:-2])


def test_causal_centring_follows_capture_order_not_row_order():
    X, tr, te, ctx = _setup()
    reversed_ctx = Context(ctx.cameras, ctx.position[::-1].copy(), ctx.weights)  # last row captured first
    _, b = centred(X[tr], X[te], tr, te, reversed_ctx, "causal", prior=5.0)
    changed = X.copy()
    changed[te[0]] += 100.0  # now the row scored last
    _, after = centred(changed[tr], changed[te], tr, te, reversed_ctx, "causal", prior=5.0)
    np.testing.assert_array_equal(b[1:], after[1:])
