"""The booster's input: the backbone features, plus the anomaly score column for a model trained
with `anomaly.as_feature: true`.

One definition for everything that feeds a booster: the train stage (`cv.WindowAnomaly.features`),
`defectflow explain`, the registered pyfunc and the edge bundle's runtime. A booster trained on
`dim + 1` columns refuses `dim`, and a column in another place or dtype would silently score
wrong, so none of them builds the matrix on its own. Only numpy: the serving container runs it.
"""

from __future__ import annotations

import numpy as np


def takes_score(head_meta: dict | None) -> bool:
    """Whether the booster of a model whose anomaly head has metadata `head_meta` (anomaly.npz's
    header, None without a head) was trained with the anomaly score as its last feature."""
    return bool(head_meta and head_meta.get("as_feature"))


def booster_input(features: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
    """(n, dim) features, and the (n,) anomaly scores when the booster takes them → (n, dim [+ 1])
    in the features' dtype, the score as the last column; `scores=None` gives `features` unchanged."""
    if scores is None:
        return features
    return np.column_stack([features, np.asarray(scores).astype(features.dtype)])
