"""The drift history: every drift check's per-camera results, kept so people can see drift over time.

A JSON Lines file (`Workdir.drift_history`), one line per camera and check: when the check ran,
the reference cutoff, and the camera's `CameraDrift` (verdict, counts, recent window, p-values,
shifts). A check appends all its cameras at once by rewriting the file atomically, so a reader
never sees half a check. Written by `monitoring.drift_check`; read by the dashboard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from defectflow import atomic
from defectflow.errors import DefectflowError
from defectflow.monitoring.drift import CameraDrift


@dataclass(frozen=True)
class DriftRecord:
    """One camera in one drift check."""

    checked_at: str  # ISO-8601 UTC
    reference_until: str
    drift: CameraDrift

    @property
    def smallest_p(self) -> tuple[str, float] | None:
        """The statistic with the smallest p-value (the one that decides the verdict), if any was tested."""
        if not self.drift.p_values:
            return None
        name = min(self.drift.p_values, key=self.drift.p_values.__getitem__)
        return name, self.drift.p_values[name]

    def to_dict(self) -> dict:
        return {"checked_at": self.checked_at, "reference_until": self.reference_until, **self.drift.as_dict()}

    @classmethod
    def from_dict(cls, row: dict) -> DriftRecord:
        row = dict(row)
        return cls(row.pop("checked_at"), row.pop("reference_until"), CameraDrift(**row))


def append_history(path: Path, results: list[CameraDrift], reference_until: str,
                   checked_at: datetime | None = None) -> None:
    """Add one check (all its cameras) to the history at `path`, atomically."""
    when = (checked_at or datetime.now(UTC)).isoformat()
    lines = "".join(json.dumps(DriftRecord(when, reference_until, r).to_dict(), default=str) + "\n"
                    for r in results)
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    atomic.write_text(path, existing + lines)


def read_history(path: Path) -> dict[str, list[DriftRecord]]:
    """Per camera (sorted by id), its checks oldest first; an absent file is an empty history."""
    if not path.exists():
        return {}
    by_camera: dict[str, list[DriftRecord]] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = DriftRecord.from_dict(json.loads(line))
        except (ValueError, TypeError, KeyError) as exc:
            raise DefectflowError(f"drift history {path} line {number} is not a drift record ({exc}); "
                                  "fix or remove that line (only the drift check writes this file)") from None
        by_camera.setdefault(record.drift.camera_id, []).append(record)
    return {camera: sorted(rows, key=lambda r: r.checked_at) for camera, rows in sorted(by_camera.items())}
