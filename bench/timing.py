"""Repeated timing: each case runs a warm-up, then `repeats` timed runs; the median is reported."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field


@dataclass
class Result:
    """One benchmark row: what was measured, each run's value and their median."""

    case: str  # a | b | c | d | e | f | memory | profile
    name: str
    unit: str
    runs: list[float]
    params: dict = field(default_factory=dict)
    baseline: str | None = None  # name of the row this one is compared with
    ratio: float | None = None  # median / baseline median (higher is better for throughputs)
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def to_dict(self) -> dict:
        return {**asdict(self), "median": self.median}


def rate_runs(work: Callable[[], int], repeats: int, warmup: bool = True,
              sync: Callable[[], None] = lambda: None) -> list[float]:
    """Items per second of `work` (which returns how many items it processed), per run.

    `sync` waits for asynchronous devices (torch.cuda.synchronize) so a run's clock stops
    when its work is really done.
    """
    if warmup:
        work()
        sync()
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        items = work()
        sync()
        rates.append(items / (time.perf_counter() - started))
    return rates


def interleaved_rate_runs(works: list[Callable[[], int]], repeats: int,
                          sync: Callable[[], None] = lambda: None) -> list[list[float]]:
    """`rate_runs` for several variants, taking turns: run r of every variant before run r+1 of
    any, so a change in machine load (other jobs on a shared box) hits all variants alike and
    their ratios stay fair. One warm-up each first."""
    for work in works:
        work()
        sync()
    out: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for runs, work in zip(out, works, strict=True):
            started = time.perf_counter()
            items = work()
            sync()
            runs.append(items / (time.perf_counter() - started))
    return out


def seconds_runs(work: Callable[[], object], repeats: int, sync: Callable[[], None] = lambda: None) -> list[float]:
    """Wall-clock seconds of `work`, per run (no warm-up: the caller decides what is cold)."""
    out = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        sync()
        out.append(time.perf_counter() - started)
    return out


def compare(rows: list[Result], baseline: Result) -> None:
    """Fill `ratio` of each row against `baseline`, both measured in this run."""
    for row in rows:
        row.baseline = baseline.name
        row.ratio = row.median / baseline.median
