"""The newest time window a challenger and the champion are both judged on before a promotion.

The window is the challenger's last cross-validation fold (its test block): the images, their
capture times, labels (1 = fail) and the challenger's out-of-fold scores, read from the workdir
that trained it. Before the champion is scored on it, images the champion may have been trained
on are dropped when enough unseen ones remain.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from defectflow.errors import PromotionRefusedError
from defectflow.registry.client import training_cutoff
from defectflow.workdir import Workdir

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion


@dataclass(frozen=True)
class NewestWindow:
    """The challenger's newest time window (its last CV fold's test block): images, capture
    times, labels (1 = fail) and the challenger's out-of-fold scores (from a model that never saw them)."""

    images: list[str]
    captured_at: list[dt.datetime]
    labels: list[int]
    challenger_scores: list[float]

    def after(self, cutoff: dt.datetime) -> NewestWindow:
        keep = [i for i, t in enumerate(self.captured_at) if t > cutoff]
        return NewestWindow(*([column[i] for i in keep] for column in
                              (self.images, self.captured_at, self.labels, self.challenger_scores)))


def newest_window(data_dir: Path, workdir: Workdir) -> NewestWindow:
    """Read the last fold's out-of-fold predictions written by the train stage."""
    import pandas as pd

    if not workdir.oof_predictions.exists():
        raise PromotionRefusedError(f"{workdir.oof_predictions} not found: the newest-window comparison needs the "
                                    "workdir that trained the challenger (run `defectflow train` first)")
    oof = pd.read_parquet(workdir.oof_predictions)
    last = oof[oof["fold"] == oof["fold"].max()]
    return NewestWindow([str(Path(data_dir) / p) for p in last["path"]],
                        [t.to_pydatetime() for t in pd.to_datetime(last["captured_at"], utc=True)],
                        last["y"].astype(int).tolist(), last["p_fail"].astype(float).tolist())


def comparison_window(champion_mv: ModelVersion, window: NewestWindow,
                      min_window: int) -> tuple[NewestWindow, str | None]:
    """Keep only window images captured after the champion's training data, when enough remain.

    The champion's final model may have been trained on part of the challenger's newest
    window, which flatters the champion. With too few unseen images the whole window is used
    (a comparison biased toward keeping the champion, i.e. conservative) and a note says so.
    """
    cutoff = training_cutoff(champion_mv)
    unseen = window.after(cutoff)
    if len(unseen.labels) >= min_window and len(set(unseen.labels)) == 2:
        return unseen, None
    return window, (f"only {len(unseen.labels)} window images postdate the champion's training data "
                    f"({cutoff.isoformat()}); compared on the whole window, which may favour the champion")
