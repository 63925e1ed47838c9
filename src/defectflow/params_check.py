"""Check every params section up front: types from the dataclass annotations, ranges from RULES.

`Params.check` runs `check_tree` on the top level (only known sections, a whole-number seed) and
builds every section; `Params.section` runs `check_section` on each section it builds, so a typo
(`featurise:`) or a bad value (`featurize.batch_size=0`, `train.n_folds=abc`,
`featurize.device=cuda` on a machine without a GPU) fails with one line and exit 2 before any
stage runs, instead of a traceback halfway through the pipeline. The rules are keyed by
section and field name, so a section that gains fields only needs a line here when the new
field has a range.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import types
import typing
from collections.abc import Callable
from typing import Any

from defectflow.errors import ConfigError

Rule = Callable[[Any], str | None]  # returns what is wrong, or None


def at_least(low: float) -> Rule:
    return lambda v: None if v >= low else f"must be ≥ {low}"


def between(low: float, high: float) -> Rule:
    return lambda v: None if low <= v <= high else f"must be between {low} and {high}"


def one_of(*choices: str) -> Rule:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}"


def _device(value: str) -> str | None:
    """auto, cpu, cuda or cuda:N; cuda only where torch sees a GPU (torch is imported only then)."""
    kind, _, index = value.partition(":")
    if value in ("auto", "cpu"):
        return None
    if kind != "cuda" or (index and not index.isdigit()):
        return "must be auto, cpu, cuda or cuda:N"
    import torch

    if not torch.cuda.is_available():
        return "asks for a CUDA GPU but none is visible here; use auto or cpu"
    if index and int(index) >= torch.cuda.device_count():
        return f"names GPU {index} but only {torch.cuda.device_count()} are visible"
    return None


# LightGBM's other names for the number of rounds: one of them in train.lgbm would silently override n_estimators.
_ROUNDS_ALIASES = ("num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees", "num_round", "num_rounds",
                   "nrounds", "num_boost_round", "max_iter")


def _lgbm(value: dict[str, Any]) -> str | None:
    """The LightGBM block must say how many rounds to boost, under one name: there is no fallback number."""
    rounds = value.get("n_estimators")
    if not isinstance(rounds, int) or isinstance(rounds, bool) or rounds < 1:
        return "must set n_estimators (the maximum number of boosting rounds) to a whole number ≥ 1"
    aliases = sorted(set(value) & set(_ROUNDS_ALIASES))
    if aliases:
        return f"sets the rounds as {', '.join(aliases)}: use n_estimators only"
    return None


POSITIVE = at_least(1)
SHARE = between(0.0, 1.0)

RULES: dict[str, dict[str, Rule]] = {
    "synth": {"n": POSITIVE, "image_size": at_least(32), "days": at_least(0.001), "defect_rate": SHARE,
              "label_noise": SHARE, "unlabelled_share": SHARE, "cameras": POSITIVE},
    "validate": {"max_bad_share": SHARE, "max_pixels": POSITIVE, "min_side": POSITIVE, "max_side": POSITIVE,
                 "max_future_minutes": at_least(0), "min_class_share": between(0.0, 0.5), "workers": POSITIVE},
    "featurize": {"image_size": at_least(32), "batch_size": POSITIVE, "num_workers": at_least(0),
                  "device": _device, "mode": one_of("frozen", "finetune"),
                  "engine": one_of("auto", "torch", "onnxruntime", "openvino"), "quantization": one_of("none", "int8"),
                  "calibration_images": POSITIVE},
    "train": {"n_folds": POSITIVE, "gap_days": at_least(0), "min_train": POSITIVE, "min_test": POSITIVE,
              "val_fraction": between(0.0, 0.9), "early_stopping_rounds": at_least(0), "min_rounds": at_least(0),
              "lgbm": _lgbm},
    "executor": {"kind": one_of("local", "local_cluster", "address"), "n_workers": POSITIVE,
                 "threads_per_worker": POSITIVE, "shard_size": POSITIVE, "task_retries": at_least(0)},
    "evaluate": {"target_fail_recall": between(0.01, 1.0), "recall_margin": between(0.0, 0.5),
                 "threshold_method": one_of("empirical", "conformal", "lower_bound"),
                 "recall_confidence": between(0.5, 0.9999), "bootstrap_rounds": at_least(0)},
    "gate": {"min_auc": SHARE, "min_fold_auc": SHARE, "recall_tolerance": SHARE},
    "anomaly": {"method": one_of("padim", "patchcore"), "coreset_size": POSITIVE, "max_candidates": POSITIVE,
                "cross_fit": at_least(2), "novelty_quantile": between(0.5, 1.0)},
    "drift": {"window_days": at_least(0.001), "alpha": between(1e-6, 0.5), "min_images": POSITIVE,
              "max_per_side": POSITIVE, "permutations": POSITIVE, "pca_dims": POSITIVE},
    "promote": {"tolerance": between(-1.0, 1.0), "min_window": POSITIVE},
    "alerts": {"min_auc": SHARE, "min_count": POSITIVE},
    "score": {"batch_size": POSITIVE},
    "dashboard": {"page_size": POSITIVE, "thumbnail_px": POSITIVE, "registry_cache_seconds": at_least(0)},
    "azure": {"max_workers": POSITIVE, "retries": at_least(0), "retry_backoff_s": at_least(0),
              "file_attempts": POSITIVE, "connect_timeout_s": at_least(0.001), "read_timeout_s": at_least(0.001),
              "state_flush_s": at_least(0)},
}


def _type_problem(value: Any, annotation: Any) -> str | None:
    """What is wrong with `value` for a field annotated `annotation` (None if it fits)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        problems = [_type_problem(value, arm) for arm in typing.get_args(annotation)]
        return None if any(p is None for p in problems) else next(p for p in problems if p)
    if annotation is type(None):
        return None if value is None else "must be null"
    if annotation is Any:
        return None
    base = origin or annotation
    if base is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if base is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if base is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        return None if ok else "must be a finite number"
    if base is str:
        # An unquoted ISO date (--set synth.start=2026-11-04) reaches us as YAML's date: the field reads it.
        return None if isinstance(value, str | dt.date) else "must be a string"
    if base in (list, tuple):
        return None if isinstance(value, list | tuple) else "must be a list"
    if base is dict:
        return None if isinstance(value, dict) else "must be a mapping"
    return None


def check_tree(tree: dict[str, Any], sections: list[str]) -> None:
    """Raise ConfigError for a top-level key that is neither `seed` nor one of `sections` (a typo such as
    `featurise:` would otherwise be ignored), a section that is not a mapping, or a seed that is not whole."""
    known = ["seed", *sections]
    unknown = sorted(str(key) for key in tree if key not in known)
    if unknown:
        raise ConfigError(f"unknown top-level section(s) in params: {', '.join(unknown)}; "
                          f"known sections are {', '.join(sorted(known))}")
    for name in sections:
        if tree.get(name) is not None and not isinstance(tree[name], dict):
            raise ConfigError(f"params section '{name}' must be a mapping of keys, got {tree[name]!r}")
    seed = tree.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ConfigError(f"params seed={seed!r} must be a whole number")


def check_section(name: str, section: Any) -> None:
    """Raise ConfigError naming the first field of `section` (a params dataclass) whose value is wrong."""
    hints = typing.get_type_hints(type(section))
    rules = RULES.get(name, {})
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        problem = _type_problem(value, hints.get(f.name, Any))
        if problem is None and value is not None and f.name in rules:
            problem = rules[f.name](value)
        if problem:
            raise ConfigError(f"params {name}.{f.name}={value!r} {problem}")
    if name == "validate" and section.min_side > section.max_side:
        raise ConfigError(f"params validate.min_side={section.min_side} is above validate.max_side={section.max_side}")
