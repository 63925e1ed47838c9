"""The validation reports: reports/validation.json for tools and an HTML page for people.

The HTML page is rendered from the Great Expectations validation result JSON (kept beside it)
with a small Jinja2 template, so it opens in any browser without a GX Data Docs site.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from defectflow.atomic import write_json, write_text
from defectflow.params import ValidateParams
from defectflow.validation.expectations import SuiteOutcome
from defectflow.validation.reasons import DESCRIPTIONS, Reason


def reason_counts(manifest: pd.DataFrame) -> dict[str, int]:
    """Quarantine counts per reason, most frequent first (ties by name, so the order is stable)."""
    counts = manifest["reason"].dropna().value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))}


def build_report(manifest: pd.DataFrame, suite: SuiteOutcome, params: ValidateParams, *, data_dir: Path,
                 has_board_id: bool, has_camera_id: bool, now: datetime, paths: dict[str, str]) -> dict[str, Any]:
    """Everything validation found, as one JSON-serialisable dict (deterministic for fixed inputs and `now`)."""
    ok = manifest[manifest["status"] == "ok"]
    total, n_bad = len(manifest), int((manifest["status"] == "quarantined").sum())
    labelled = ok[ok["label"].notna()]
    quarantined = manifest[manifest["status"] == "quarantined"]
    notes = []
    if not has_board_id:
        notes.append("labels.csv has no board_id column: each image is its own group in grouped cross-validation")
    if not has_camera_id:
        notes.append("labels.csv has no camera_id column: camera_id is null")
    notes.append("captured_at values without a UTC offset were read as UTC")
    return {
        "data_dir": str(data_dir),
        "checked_at": now.isoformat(),
        "params": vars(params),
        "counts": {
            "total": total,
            "ok": len(ok),
            "quarantined": n_bad,
            "labelled": len(labelled),
            "unlabelled": len(ok) - len(labelled),
            "per_class": {str(k): int(v) for k, v in sorted(labelled["label"].value_counts().items())},
        },
        "share_bad": n_bad / total if total else 0.0,
        "max_bad_share": params.max_bad_share,
        "by_reason": reason_counts(manifest),
        "reason_descriptions": {str(r): DESCRIPTIONS[r] for r in Reason},
        "quarantined": [
            {"line": int(r.line), "path": r.path, "reason": r.reason, "detail": r.detail}
            for r in quarantined.itertuples(index=False)
        ],
        "mode_counts": {str(k): int(v) for k, v in sorted(ok["mode"].value_counts().items())},
        "notes": notes,
        "great_expectations": {
            "success": suite.success,
            "expectations": [
                {k: r[k] for k in ("group", "expectation", "kwargs", "success", "observed_value", "unexpected_count")}
                for r in suite.results
            ],
        },
        "outputs": paths,
    }


_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>defectflow · data validation</title>
<style>
 body{font-family:system-ui,sans-serif;margin:2rem;color:#222} table{border-collapse:collapse;width:100%}
 th,td{border:1px solid #ccc;padding:.35rem .5rem;text-align:left;vertical-align:top;font-size:.9rem}
 th{background:#f3f3f3} .ok{color:#137333;font-weight:600} .bad{color:#b3261e;font-weight:600}
 code{font-size:.85rem} .summary span{margin-right:1.5rem}
</style></head><body>
<h1>Data validation · Great Expectations suite <code>{{ suite_name }}</code></h1>
<p class="summary">
 <span>Result: {% if success %}<span class="ok">all expectations met</span>{% else %}\
<span class="bad">expectations failed</span>{% endif %}</span>
 <span>{{ stats.successful_expectations }} / {{ stats.evaluated_expectations }} met</span>
 <span>GX {{ version }}</span><span>validated {{ validated_at }}</span>
</p>
<p>Rows checked: the manifest rows with status <code>ok</code> ({{ rows }} rows). Quarantined rows and
their reasons are in <code>validation.json</code>; the raw result is in <code>{{ raw_name }}</code>.</p>
<table><thead><tr><th>#</th><th>Expectation</th><th>Arguments</th><th>Success</th><th>Observed</th><th>Unexpected</th><th>Examples</th></tr></thead>
<tbody>{% for r in results %}
<tr><td>{{ loop.index }}</td><td><code>{{ r.expectation }}</code><br><small>{{ r.group }}</small></td>
<td><code>{{ r.kwargs | tojson }}</code></td>
<td>{% if r.success %}<span class="ok">yes</span>{% else %}<span class="bad">no</span>{% endif %}</td>
<td>{{ r.observed_value if r.observed_value is not none else "" }}</td>
<td>{% if r.unexpected_count is not none %}{{ r.unexpected_count }} of {{ r.element_count }}{% endif %}\
{% if r.error %}<br>error: {{ r.error }}{% endif %}</td>
<td>{% for e in r.unexpected_examples %}<code>{{ e }}</code>{% if not loop.last %}, {% endif %}{% endfor %}</td></tr>
{% endfor %}</tbody></table></body></html>
""")


def write_gx_report(suite: SuiteOutcome, html_path: Path, n_rows: int) -> Path:
    """Write the raw GX result JSON beside `html_path` and the HTML page; returns the JSON path."""
    raw_path = html_path.with_suffix(".json")
    write_json(raw_path, suite.raw)
    meta = suite.raw.get("meta", {})
    html = _TEMPLATE.render(
        suite_name=suite.raw.get("suite_name", ""),
        success=suite.success,
        stats=suite.raw["statistics"],
        version=meta.get("great_expectations_version", ""),
        validated_at=meta.get("validation_time", ""),
        rows=n_rows,
        raw_name=raw_path.name,
        results=suite.results,
    )
    write_text(html_path, html)
    return raw_path
