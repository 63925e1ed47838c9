"""validate(): labels.csv + images → manifest.parquet, reports/validation.json, GX report.

Order matters for "nothing is lost": every output is written (atomically) before the stage
decides whether to fail, so a failing run still leaves the manifest and the reasons behind.
Input files are only ever opened for reading.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageFile
from tqdm import tqdm

from defectflow.atomic import write_json
from defectflow.errors import DataQualityError
from defectflow.params import ValidateParams
from defectflow.validation.duplicates import quarantine_duplicates
from defectflow.validation.expectations import CLASS_BALANCE, run_suite
from defectflow.validation.labels import read_labels
from defectflow.validation.manifest import build_manifest, write_manifest
from defectflow.validation.report import build_report, write_gx_report
from defectflow.validation.rows import check_row
from defectflow.workdir import Workdir

log = logging.getLogger(__name__)


def validate(data_dir: Path, workdir: Workdir, params: ValidateParams, now: datetime | None = None) -> dict[str, Any]:
    """Check every row of data_dir/labels.csv, write the manifest and reports, return the report.

    Raises DataQualityError (after writing everything) when the quarantined share exceeds
    params.max_bad_share, or when the Great Expectations suite fails (class balance first).
    `now` fixes the "future timestamp" reference (tests, reproducible re-runs).
    """
    now = (now or datetime.now(UTC)).astimezone(UTC)
    data_dir = Path(data_dir)
    table = read_labels(data_dir)
    if table.rows.empty:
        raise DataQualityError(f"{data_dir / 'labels.csv'} lists no images")
    root = data_dir.resolve()

    records = table.rows.to_dict("records")
    with pillow_limits(params.max_pixels), ThreadPoolExecutor(max_workers=params.workers) as pool:
        # map() yields in submission order: the manifest follows labels.csv whatever the timing.
        results = list(tqdm(pool.map(lambda row: check_row(root, row, params, now), records),
                            total=len(records), desc="validate", unit="img", disable=None))

    manifest = quarantine_duplicates(build_manifest(results))
    ok_rows = manifest[manifest["status"] == "ok"]
    suite = run_suite(ok_rows, params, now)

    write_manifest(manifest, workdir.manifest)
    gx_raw = write_gx_report(suite, workdir.gx_report, len(ok_rows))
    report = build_report(
        manifest, suite, params, data_dir=data_dir, has_board_id=table.has_board_id,
        has_camera_id=table.has_camera_id, now=now,
        paths={"manifest": str(workdir.manifest), "report": str(workdir.validation_report),
               "gx_html": str(workdir.gx_report), "gx_json": str(gx_raw)},
    )
    write_json(workdir.validation_report, report)
    _raise_on_bad_data(report, suite, params, workdir)
    return report


@contextlib.contextmanager
def pillow_limits(max_pixels: int) -> Iterator[None]:
    """Set Pillow's process-wide decoding limits for the scan, then restore them.

    Pillow raises DecompressionBombError above 2 × MAX_IMAGE_PIXELS on open; we check the
    pixel count ourselves from the header (scan._header_problem), so its warning between 1×
    and 2× is noise. LOAD_TRUNCATED_IMAGES must be off or truncated files would "decode".
    Set once here, not per thread, because these are module globals.
    """
    saved = Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = max_pixels, False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS, ImageFile.LOAD_TRUNCATED_IMAGES = saved


def _raise_on_bad_data(report: dict[str, Any], suite: Any, params: ValidateParams, workdir: Workdir) -> None:
    counts = report["counts"]
    where = f"see {workdir.validation_report} (manifest: {workdir.manifest})"
    if report["share_bad"] > params.max_bad_share:
        top = ", ".join(f"{reason} {n}" for reason, n in list(report["by_reason"].items())[:5])
        raise DataQualityError(
            f"{counts['quarantined']} of {counts['total']} images quarantined "
            f"({report['share_bad']:.1%} > validate.max_bad_share {params.max_bad_share:.1%}); "
            f"top reasons: {top}; {where}"
        )
    balance = suite.failed(CLASS_BALANCE)
    if balance:
        shares = ", ".join(f"{label} {n}" for label, n in counts["per_class"].items()) or "none"
        raise DataQualityError(
            f"class balance is degenerate: among {counts['labelled']} labelled usable images the counts are "
            f"{shares}; each class needs at least validate.min_class_share {params.min_class_share:.1%}; {where}"
        )
    others = suite.failed()
    if others:
        names = ", ".join(f"{r['expectation']}({r['kwargs'].get('column', '')})" for r in others)
        raise DataQualityError(f"Great Expectations suite failed: {names}; see {workdir.gx_report}")
    log.info("validated %d rows: %d ok, %d quarantined", counts["total"], counts["ok"], counts["quarantined"])
