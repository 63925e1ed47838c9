"""The Great Expectations 1.x suite run on the usable (status ok) rows of the manifest.

Per-row checks already quarantine what they can see; this suite states the contract the
training stages rely on for the table as a whole, and keeps a standard, inspectable record
of it. Great Expectations is imported lazily (it takes seconds to import).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from defectflow.params import ValidateParams
from defectflow.validation.labels import LABELS
from defectflow.validation.manifest import MANIFEST_COLUMNS

SUITE_NAME = "defectflow_manifest"
NOT_NULL_COLUMNS = ("path", "sha256", "captured_at", "width", "height", "mode", "bytes", "board_id", "status")
CLASS_BALANCE = "class_balance"


@dataclass(frozen=True)
class SuiteOutcome:
    success: bool
    results: list[dict[str, Any]]  # one summary per expectation, in suite order
    raw: dict[str, Any]  # the full Great Expectations validation result (JSON-serialisable)

    def failed(self, group: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"] and (group is None or r["group"] == group)]


def build_expectations(params: ValidateParams, now: datetime) -> list[tuple[str, Any]]:
    """(group, expectation) pairs; the group names what a failure means for people."""
    import great_expectations as gx

    ex = gx.expectations
    latest = now + timedelta(minutes=params.max_future_minutes)
    pairs: list[tuple[str, Any]] = [
        ("schema", ex.ExpectTableColumnsToMatchSet(column_set=list(MANIFEST_COLUMNS), exact_match=True)),
    ]
    pairs += [("not_null", ex.ExpectColumnValuesToNotBeNull(column=c)) for c in NOT_NULL_COLUMNS]
    pairs += [
        # Column-map expectations skip nulls, so unlabelled rows pass this one.
        ("labels", ex.ExpectColumnValuesToBeInSet(column="label", value_set=list(LABELS))),
        ("timestamps", ex.ExpectColumnMaxToBeBetween(column="captured_at", max_value=pd.Timestamp(latest))),
        ("duplicates", ex.ExpectCompoundColumnsToBeUnique(column_list=["sha256", "label"])),
        ("sizes", ex.ExpectColumnValuesToBeBetween(column="width", min_value=params.min_side,
                                                   max_value=params.max_side)),
        ("sizes", ex.ExpectColumnValuesToBeBetween(column="height", min_value=params.min_side,
                                                   max_value=params.max_side)),
        ("sizes", ex.ExpectColumnValuesToBeBetween(column="bytes", min_value=1)),
    ]
    # "At least min_class_share of the labelled rows are <label>": `mostly` is computed over
    # non-null values, i.e. over labelled rows only.
    pairs += [(CLASS_BALANCE, ex.ExpectColumnValuesToBeInSet(column="label", value_set=[label],
                                                             mostly=params.min_class_share))
              for label in LABELS]
    return pairs


def run_suite(ok_rows: pd.DataFrame, params: ValidateParams, now: datetime) -> SuiteOutcome:
    """Validate `ok_rows` (manifest columns) in an ephemeral context; nothing is written by GX."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    _quiet_gx_logging()
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quiet_gx_logging()
    context = gx.get_context(mode="ephemeral")
    # Our own progress bar covers the slow part (decoding); GX's per-metric bars are noise.
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (context.data_sources.add_pandas("manifest")
             .add_dataframe_asset("ok_rows")
             .add_batch_definition_whole_dataframe("all"))
    pairs = build_expectations(params, now)
    suite = context.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
    # GX reports results in its own order: match them back to the suite by expectation id.
    groups = {suite.add_expectation(expectation).id: group for group, expectation in pairs}
    order = list(groups)
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{SUITE_NAME}_run", data=batch, suite=suite))
    result = definition.run(batch_parameters={"dataframe": _for_gx(ok_rows)}, result_format="SUMMARY")
    raw = result.to_json_dict()
    by_id = {r["expectation_config"]["id"]: r for r in raw["results"]}
    summaries = [_summarise(groups[i], by_id[i]) for i in order]
    return SuiteOutcome(success=bool(raw["success"]), results=summaries, raw=raw)


def _quiet_gx_logging() -> None:
    """GX logs its plugin registration at INFO (hundreds of lines), and one of its modules sets
    its own logger to INFO on import: keep GX to warnings, before and after the import."""
    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _for_gx(frame: pd.DataFrame) -> pd.DataFrame:
    """Plain numpy/object dtypes: GX's pandas metrics predate pandas' nullable extension types."""
    out = frame[list(MANIFEST_COLUMNS)].copy()
    for column in out.columns:
        if isinstance(out[column].dtype, (pd.StringDtype, pd.Int64Dtype)):
            out[column] = out[column].astype(object).where(out[column].notna(), None)
    return out.reset_index(drop=True)


def _summarise(group: str, result: dict[str, Any]) -> dict[str, Any]:
    config = result["expectation_config"]
    kwargs = {k: v for k, v in config["kwargs"].items() if k != "batch_id"}
    body = result.get("result") or {}
    return {
        "group": group,
        "expectation": config["type"],
        "kwargs": kwargs,
        "success": bool(result["success"]),
        "observed_value": body.get("observed_value"),
        "element_count": body.get("element_count"),
        "unexpected_count": body.get("unexpected_count"),
        "unexpected_percent": body.get("unexpected_percent"),
        "unexpected_examples": body.get("partial_unexpected_list", [])[:10],
        "error": (result.get("exception_info") or {}).get("exception_message"),
    }
