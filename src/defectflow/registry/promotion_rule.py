"""The champion/challenger rule as a pure function: no MLflow, no Prefect, easy to test.

A challenger replaces the champion only when its gate passed and it is no worse than the
champion on the newest time window (both scored on the same images) by more than a
tolerance. The caller (registry.promote) gathers the facts; this module only judges them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class WindowScore:
    """AUC of one model on the newest time window, and how many labelled rows it rests on."""

    auc: float
    n: int


@dataclass(frozen=True)
class Candidate:
    """What the rule needs to know about one registered version."""

    version: str
    gate_passed: bool
    window: WindowScore | None = None


@dataclass(frozen=True)
class Decision:
    """The verdict, with every reason and the numbers compared (recorded on the versions)."""

    promote: bool
    version: str
    previous_champion: str | None
    reasons: tuple[str, ...]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def action(self) -> str:
        return "promoted" if self.promote else "refused"


def decide(challenger: Candidate, champion: Candidate | None, tolerance: float, min_window: int) -> Decision:
    """Judge whether `challenger` may become champion.

    Rules, in order: a failed gate always refuses; with no champion yet a passed gate
    promotes; otherwise both must be scored on the same newest window with at least
    `min_window` rows, and the challenger may trail the champion by at most `tolerance`.
    """
    previous = champion.version if champion else None
    metrics: dict[str, float] = {"tolerance": tolerance}
    if challenger.window is not None:
        metrics.update(challenger_window_auc=challenger.window.auc, window_n=float(challenger.window.n))
    if champion is not None and champion.window is not None:
        metrics["champion_window_auc"] = champion.window.auc

    def verdict(promote: bool, *reasons: str) -> Decision:
        return Decision(promote, challenger.version, previous, tuple(reasons), metrics)

    if not challenger.gate_passed:
        return verdict(False, f"version {challenger.version}: its evaluation gate failed; "
                              "a failed gate is never promoted")
    if champion is None:
        return verdict(True, f"no champion yet; version {challenger.version} passed its gate")
    if champion.version == challenger.version:
        return verdict(False, f"version {challenger.version} is already the champion")
    if challenger.window is None or champion.window is None:
        return verdict(False, "the newest-window comparison is missing; both models must be scored on the same window")
    if challenger.window.n != champion.window.n:
        return verdict(False, f"the two models were scored on different windows "
                              f"({challenger.window.n} vs {champion.window.n} rows)")
    if challenger.window.n < min_window:
        return verdict(False, f"the newest window has {challenger.window.n} labelled rows, "
                              f"fewer than promote.min_window={min_window}")
    if math.isnan(challenger.window.auc) or math.isnan(champion.window.auc):
        return verdict(False, "the newest window holds a single class, so AUC is undefined; cannot compare")

    delta = challenger.window.auc - champion.window.auc
    metrics["auc_delta"] = delta
    comparison = (f"newest window ({challenger.window.n} images): challenger AUC {challenger.window.auc:.4f} "
                  f"vs champion v{champion.version} AUC {champion.window.auc:.4f} "
                  f"(delta {delta:+.4f}, tolerance {tolerance})")
    if delta < -tolerance:
        return verdict(False, f"challenger is worse than the champion by more than the tolerance; {comparison}")
    return verdict(True, f"challenger is no worse than the champion within the tolerance; {comparison}")
