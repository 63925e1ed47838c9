"""The AUC-history chart as plain SVG geometry, computed server-side (no charting library in the page)."""

from __future__ import annotations

from dataclasses import dataclass

from defectflow.dashboard.model_history import VersionInfo
from defectflow.registry.names import CHAMPION


@dataclass(frozen=True)
class ChartPoint:
    x: float
    y: float
    label: str  # "v3: 0.934"
    champion: bool


@dataclass(frozen=True)
class AucChart:
    width: int
    height: int
    points: list[ChartPoint]
    gate_y: float
    gate_label: str
    y_min: float
    y_max: float

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


def auc_chart(versions: list[VersionInfo], gate_auc: float, width: int = 560, height: int = 160,
              pad: int = 28) -> AucChart | None:
    """Versions with an AUC, left to right; the y range always shows the gate line."""
    scored = [v for v in versions if v.mean_auc is not None]
    if not scored:
        return None
    values = [v.mean_auc for v in scored] + [gate_auc]
    y_min = max(0.0, min(values) - 0.02)
    y_max = min(1.0, max(values) + 0.02)
    span = (y_max - y_min) or 1.0

    def y_of(value: float) -> float:
        return pad + (y_max - value) / span * (height - 2 * pad)

    step = (width - 2 * pad) / max(len(scored) - 1, 1)
    points = [ChartPoint(pad + i * step if len(scored) > 1 else width / 2, y_of(v.mean_auc),
                         f"v{v.version}: {v.mean_auc:.3f}", CHAMPION in v.aliases)
              for i, v in enumerate(scored)]
    return AucChart(width, height, points, y_of(gate_auc), f"gate {gate_auc:.2f}", y_min, y_max)
