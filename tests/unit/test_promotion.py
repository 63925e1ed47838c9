"""The champion/challenger rules, without MLflow or Prefect."""

from __future__ import annotations

from defectflow.registry.promotion_rule import Candidate, WindowScore, decide

TOL = 0.01
MIN_WINDOW = 20


def challenger(auc: float | None = 0.95, gate: bool = True, n: int = 50) -> Candidate:
    return Candidate("7", gate, WindowScore(auc, n) if auc is not None else None)


def champion(auc: float = 0.95, n: int = 50) -> Candidate:
    return Candidate("3", True, WindowScore(auc, n))


def test_failed_gate_is_refused_even_without_a_champion():
    d = decide(challenger(gate=False), None, TOL, MIN_WINDOW)
    assert not d.promote and d.action == "refused"
    assert "gate failed" in d.reasons[0]


def test_failed_gate_is_refused_even_when_better_than_champion():
    d = decide(challenger(auc=0.99, gate=False), champion(0.80), TOL, MIN_WINDOW)
    assert not d.promote


def test_first_version_with_passed_gate_is_promoted():
    d = decide(challenger(auc=None), None, TOL, MIN_WINDOW)
    assert d.promote and d.previous_champion is None
    assert "no champion yet" in d.reasons[0]


def test_challenger_worse_beyond_tolerance_is_refused():
    d = decide(challenger(0.93), champion(0.95), TOL, MIN_WINDOW)
    assert not d.promote
    assert d.previous_champion == "3"
    assert d.metrics["auc_delta"] < -TOL
    assert d.metrics["challenger_window_auc"] == 0.93 and d.metrics["champion_window_auc"] == 0.95


def test_challenger_slightly_worse_within_tolerance_is_promoted():
    d = decide(challenger(0.945), champion(0.95), TOL, MIN_WINDOW)
    assert d.promote


def test_challenger_better_is_promoted_and_reason_names_both_aucs():
    d = decide(challenger(0.97), champion(0.90), TOL, MIN_WINDOW)
    assert d.promote
    assert "0.9700" in d.reasons[0] and "0.9000" in d.reasons[0]


def test_equal_auc_is_promoted():
    assert decide(challenger(0.95), champion(0.95), 0.0, MIN_WINDOW).promote


def test_comparison_needs_both_window_scores():
    d = decide(challenger(auc=None), champion(0.9), TOL, MIN_WINDOW)
    assert not d.promote and "missing" in d.reasons[0]


def test_window_too_small_is_refused():
    d = decide(challenger(0.99, n=5), champion(0.5, n=5), TOL, MIN_WINDOW)
    assert not d.promote and "min_window" in d.reasons[0]


def test_different_windows_are_refused():
    d = decide(challenger(0.99, n=50), champion(0.5, n=40), TOL, MIN_WINDOW)
    assert not d.promote and "different windows" in d.reasons[0]


def test_current_champion_is_not_promoted_again():
    d = decide(Candidate("3", True, WindowScore(0.9, 50)), champion(0.9), TOL, MIN_WINDOW)
    assert not d.promote and "already the champion" in d.reasons[0]


def test_single_class_window_is_refused():
    d = decide(challenger(float("nan")), champion(float("nan")), TOL, MIN_WINDOW)
    assert not d.promote and "single class" in d.reasons[0]
