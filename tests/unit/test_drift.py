"""Drift statistics with a known shift and with none: image statistics, the MMD permutation test,
and the per-camera verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from defectflow.monitoring.drift import IMAGE_STATS, drift_by_camera, image_statistics, mmd_test
from defectflow.params import DriftParams


def _image(rng, brightness=0.5, noise=0.1, grey=False):
    x = np.clip(brightness + noise * rng.normal(size=(64, 64, 3)), 0, 1)
    if grey:
        x[:] = x.mean(axis=2, keepdims=True)
    return (x * 255).astype(np.uint8)


def test_image_statistics_follow_what_they_measure():
    rng = np.random.default_rng(0)
    base = image_statistics(_image(rng))
    assert image_statistics(_image(rng, brightness=0.3))["brightness"] < base["brightness"] - 0.15
    assert image_statistics(_image(rng, noise=0.02))["contrast"] < base["contrast"] / 2
    assert image_statistics(_image(rng, grey=True))["saturation"] < base["saturation"] / 4
    sharp = _image(rng)
    blurred = sharp.astype(np.float32)
    blurred[1:-1, 1:-1] = (blurred[:-2, 1:-1] + blurred[2:, 1:-1] + blurred[1:-1, :-2] + blurred[1:-1, 2:]) / 4
    assert image_statistics(blurred.astype(np.uint8))["sharpness"] < image_statistics(sharp)["sharpness"] / 2


def test_mmd_permutation_test_finds_a_shift_and_not_noise():
    rng = np.random.default_rng(1)
    a, same, shifted = rng.normal(size=(60, 5)), rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) + [1, 0, 0, 0, 0]
    _, p_same = mmd_test(a, same, 200, np.random.default_rng(2))
    _, p_shift = mmd_test(a, shifted, 200, np.random.default_rng(2))
    assert p_shift < 0.01 < p_same


def _table(n_days: int, shift_last_day: dict, seed: int):
    """A line of two cameras, 12 images a day each; the last day optionally shifted."""
    rng = np.random.default_rng(seed)
    rows, emb = [], []
    for day in range(n_days):
        for camera in ("cam-1", "cam-2"):
            for k in range(12):
                last = day == n_days - 1 and camera == "cam-1"
                row = {"camera_id": camera, "captured_at": pd.Timestamp("2026-09-01", tz="UTC")
                       + pd.Timedelta(days=day, hours=6 + k), "anomaly_score": rng.normal(1.0, 0.2)}
                row.update({s: rng.normal(0.5, 0.05) for s in IMAGE_STATS})
                vec = rng.normal(size=12)
                if last:
                    for key, delta in shift_last_day.items():
                        if key == "embedding":
                            vec[:3] += delta
                        else:
                            row[key] += delta
                rows.append(row)
                emb.append(vec)
    return pd.DataFrame(rows), np.array(emb)


@pytest.mark.parametrize("shift", [{"brightness": -0.15}, {"embedding": 2.0}, {"anomaly_score": 0.8}])
def test_a_shifted_camera_drifts_and_the_other_does_not(shift):
    table, emb = _table(8, shift, seed=3)
    until = pd.Timestamp("2026-09-07", tz="UTC")  # reference: the first six days
    results = {r.camera_id: r for r in drift_by_camera(table, emb, until, DriftParams(), seed=0)}
    assert results["cam-1"].verdict == "drift" and results["cam-2"].verdict == "ok"
    assert results["cam-1"].n_recent == 12 and results["cam-1"].n_reference == 72


def test_no_shift_raises_no_alarm_over_many_seeds():
    alarms = 0
    for seed in range(10):
        table, emb = _table(8, {}, seed=seed)
        results = drift_by_camera(table, emb, pd.Timestamp("2026-09-07", tz="UTC"), DriftParams(), seed)
        alarms += sum(r.drifted for r in results)
    assert alarms <= 1  # 20 checks at alpha 0.01: expected 0.2 false alarms


def test_too_few_recent_images_gives_no_verdict_and_a_new_camera_uses_the_line():
    table, emb = _table(8, {}, seed=4)
    new = table.iloc[-3:].assign(camera_id="cam-9")
    table = pd.concat([table.iloc[:-3], new], ignore_index=True)
    results = {r.camera_id: r for r in drift_by_camera(table, emb, pd.Timestamp("2026-09-07", tz="UTC"),
                                                        DriftParams(), seed=0)}
    assert results["cam-9"].verdict == "insufficient_data" and results["cam-9"].n_reference == 144
