"""The acceptance rule for INT8 features: the time-split AUC on the same folds may drop by at most
MAX_AUC_DROP against fp32.

Inputs are the evaluate stage's `metrics/cv.json` of two runs on the same data, one featurized
in fp32 and one with `featurize.quantization: int8`. The folds must be the same (same test
windows, same sizes), otherwise the comparison means nothing and the check refuses.
"""

from __future__ import annotations

from typing import Any

from defectflow.errors import ConfigError

MAX_AUC_DROP = 0.005
_FOLD_IDENTITY = ("fold", "n_train", "n_test", "test_start", "test_end")


def int8_verdict(fp32_cv: dict[str, Any], int8_cv: dict[str, Any], max_drop: float = MAX_AUC_DROP) -> dict[str, Any]:
    """{'accepted', 'mean_auc_fp32', 'mean_auc_int8', 'drop', 'folds': [...]} for two cv.json dicts."""
    a, b = fp32_cv["folds"], int8_cv["folds"]
    if [tuple(f[k] for k in _FOLD_IDENTITY) for f in a] != [tuple(f[k] for k in _FOLD_IDENTITY) for f in b]:
        raise ConfigError("the fp32 and int8 runs were cross-validated on different folds; featurize the same "
                          "manifest both ways and train with the same train.* params")
    folds = [{"fold": x["fold"], "auc_fp32": x["auc"], "auc_int8": y["auc"], "drop": x["auc"] - y["auc"]}
             for x, y in zip(a, b, strict=True)]
    drop = float(fp32_cv["mean_auc"]) - float(int8_cv["mean_auc"])
    return {"accepted": drop <= max_drop, "max_drop": max_drop, "mean_auc_fp32": float(fp32_cv["mean_auc"]),
            "mean_auc_int8": float(int8_cv["mean_auc"]), "drop": drop, "folds": folds}
