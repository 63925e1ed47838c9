"""Cross-row check: identical content (same sha256) listed more than once.

Copies with different labels are all quarantined (we cannot know which label is right).
Copies that agree keep one: a labelled copy before an unlabelled one, then the earliest
captured_at, so a later copy cannot land in a test window while its twin sits in training.
"""

from __future__ import annotations

import pandas as pd

from defectflow.validation.reasons import Reason


def quarantine_duplicates(manifest: pd.DataFrame) -> pd.DataFrame:
    """Return a copy of `manifest` with duplicate rows among the ok rows quarantined."""
    out = manifest.copy()
    ok = out[(out["status"] == "ok") & out["sha256"].notna()]
    for sha, group in ok.groupby("sha256", sort=False):
        if len(group) < 2:
            continue
        labels = sorted(set(group["label"].dropna()))
        if len(labels) > 1:
            out.loc[group.index, ["status", "reason", "detail"]] = [
                "quarantined", str(Reason.DUPLICATE_CONFLICTING_LABELS),
                f"sha256 {sha[:12]}… is labelled {' and '.join(labels)} across {len(group)} rows",
            ]
            continue
        order = group.assign(_unlabelled=group["label"].isna()).sort_values(
            ["_unlabelled", "captured_at", "line"], kind="stable")
        keeper = order.iloc[0]
        later = order.index[1:]
        out.loc[later, ["status", "reason", "detail"]] = [
            "quarantined", str(Reason.DUPLICATE_CONTENT),
            f"same content as {keeper['path']} (labels.csv line {keeper['line']}), which is kept",
        ]
    return out
