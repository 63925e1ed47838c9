"""A placement frame: local component coordinates (in layout units) mapped onto the canvas."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from defectflow.synth.canvas import RGB, Canvas


@dataclass(frozen=True)
class Frame:
    """Origin (canvas pixels), rotation (radians) and scale (pixels per layout unit)."""

    cx: float
    cy: float
    angle: float
    unit: float

    def point(self, lx: float, ly: float) -> tuple[float, float]:
        c, s = math.cos(self.angle), math.sin(self.angle)
        return (self.cx + (lx * c - ly * s) * self.unit, self.cy + (lx * s + ly * c) * self.unit)

    def moved(self, dx: float, dy: float, dangle: float = 0.0) -> Frame:
        """The same frame displaced by (dx, dy) layout units in canvas axes and turned by dangle."""
        return replace(self, cx=self.cx + dx * self.unit, cy=self.cy + dy * self.unit, angle=self.angle + dangle)

    def rect(self, canvas: Canvas, lx: float, ly: float, w: float, h: float, color: RGB, *,
             turn: float = 0.0, **kw) -> None:
        x, y = self.point(lx, ly)
        canvas.rect(x, y, w * self.unit, h * self.unit, self.angle + turn, color, **kw)

    def ellipse(self, canvas: Canvas, lx: float, ly: float, rx: float, ry: float, color: RGB, **kw) -> None:
        x, y = self.point(lx, ly)
        canvas.ellipse(x, y, rx * self.unit, ry * self.unit, self.angle, color, **kw)

    def line(self, canvas: Canvas, lx0: float, ly0: float, lx1: float, ly1: float, width: float,
             color: RGB, **kw) -> None:
        x0, y0 = self.point(lx0, ly0)
        x1, y1 = self.point(lx1, ly1)
        canvas.line(x0, y0, x1, y1, width * self.unit, color, **kw)
