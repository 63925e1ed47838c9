"""Surface-mount component types: land pattern (pads on the board) and the part's top view.

Geometry is in layout units (about one output pixel at 160 px). Pads belong to the board and
are drawn in the nominal placement frame; the part (leads, body, markings) is drawn in its
own frame, which placement defects displace or turn relative to the pads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from defectflow.synth import palette
from defectflow.synth.canvas import Canvas
from defectflow.synth.frame import Frame


@dataclass(frozen=True)
class Pad:
    lx: float
    ly: float
    w: float
    h: float
    axis: str  # 'x' or 'y': the direction the lead/termination comes from (solder fillet gradient)


@dataclass(frozen=True)
class Lead:
    lx: float
    ly: float
    w: float
    h: float


@dataclass(frozen=True)
class PartType:
    name: str
    pads: tuple[Pad, ...]
    leads: tuple[Lead, ...]
    body: tuple[float, float]
    body_color: tuple[float, float, float]
    two_terminal: bool  # chips: can tombstone; their "bridge" is a solder splash to a neighbour
    draw_top: Callable[[Canvas, Frame, np.random.Generator], None]
    weight: float  # share of images showing this part type

    @property
    def extent(self) -> float:
        """Half-size of the land pattern plus body, for silkscreen outlines and layout."""
        xs = [abs(p.lx) + p.w / 2 for p in self.pads] + [self.body[0] / 2]
        ys = [abs(p.ly) + p.h / 2 for p in self.pads] + [self.body[1] / 2]
        return max(max(xs), max(ys))


def _resistor_top(canvas: Canvas, f: Frame, rng: np.random.Generator) -> None:
    f.rect(canvas, 0, 0, 38, 28, palette.RESISTOR_BODY, shade_v=0.15)
    # three-digit value code: small light strokes
    for k in range(3):
        f.rect(canvas, -9 + 9 * k, 0, 5, 9, palette.MARKING, alpha=0.55 + 0.2 * rng.random())


def _capacitor_top(canvas: Canvas, f: Frame, rng: np.random.Generator) -> None:
    tone = 0.9 + 0.2 * rng.random()
    f.rect(canvas, 0, 0, 40, 28, tuple(c * tone for c in palette.CERAMIC_BODY), shade_v=0.12)


def _sot23_top(canvas: Canvas, f: Frame, rng: np.random.Generator) -> None:
    f.rect(canvas, 0, 0, 40, 26, palette.MOULD_COMPOUND, shade_v=0.2)
    f.rect(canvas, -6, 0, 14, 6, palette.MARKING, alpha=0.45)
    f.rect(canvas, 8, 0, 6, 6, palette.MARKING, alpha=0.45)


def _soic8_top(canvas: Canvas, f: Frame, rng: np.random.Generator) -> None:
    f.rect(canvas, 0, 0, 72, 46, palette.MOULD_COMPOUND, shade_v=0.15)
    f.ellipse(canvas, -28, 14, 3.5, 3.5, (0.07, 0.07, 0.08), radial_shade=-0.3)  # pin-1 dimple
    for row, length in ((-6, 40), (6, 30)):
        f.rect(canvas, -4, row, length, 5, palette.MARKING, alpha=0.5)


def _electrolytic_top(canvas: Canvas, f: Frame, rng: np.random.Generator) -> None:
    f.rect(canvas, 0, 0, 66, 66, (0.07, 0.07, 0.08))  # plastic seat
    f.ellipse(canvas, 0, 0, 31, 31, palette.ALUMINIUM_CAN, radial_shade=0.18)
    f.rect(canvas, -21, 0, 12, 44, palette.POLARITY_STRIPE, alpha=0.85)  # polarity band
    for turn in (0.0, math.pi / 2):  # pressure-vent cross
        x0, y0 = f.point(-14 * math.cos(turn), -14 * math.sin(turn))
        x1, y1 = f.point(14 * math.cos(turn), 14 * math.sin(turn))
        canvas.line(x0, y0, x1, y1, 1.6 * f.unit, (0.45, 0.46, 0.48))
    f.ellipse(canvas, 0, 0, 31.5, 31.5, (0.3, 0.3, 0.32), alpha=0.25, radial_shade=-0.6)  # rim falloff


def _chip(name: str, top, body_color, weight: float) -> PartType:
    return PartType(
        name=name,
        pads=(Pad(-31, 0, 20, 32, "x"), Pad(31, 0, 20, 32, "x")),
        leads=(Lead(-24, 0, 10, 28), Lead(24, 0, 10, 28)),
        body=(58, 28),
        body_color=body_color,
        two_terminal=True,
        draw_top=top,
        weight=weight,
    )


PART_TYPES: tuple[PartType, ...] = (
    _chip("chip_resistor", _resistor_top, palette.RESISTOR_BODY, 0.24),
    _chip("chip_capacitor", _capacitor_top, palette.CERAMIC_BODY, 0.20),
    PartType(
        name="sot23",
        pads=(Pad(-19, 24, 14, 18, "y"), Pad(19, 24, 14, 18, "y"), Pad(0, -24, 14, 18, "y")),
        leads=(Lead(-19, 18, 8, 12), Lead(19, 18, 8, 12), Lead(0, -18, 8, 12)),
        body=(40, 26),
        body_color=palette.MOULD_COMPOUND,
        two_terminal=False,
        draw_top=_sot23_top,
        weight=0.20,
    ),
    PartType(
        name="soic8",
        pads=tuple(Pad(x, y, 10, 22, "y") for y in (-40, 40) for x in (-24, -8, 8, 24)),
        leads=tuple(Lead(x, y, 7, 16) for y in (-29, 29) for x in (-24, -8, 8, 24)),
        body=(72, 46),
        body_color=palette.MOULD_COMPOUND,
        two_terminal=False,
        draw_top=_soic8_top,
        weight=0.20,
    ),
    PartType(
        name="electrolytic",
        pads=(Pad(-40, 0, 18, 24, "x"), Pad(40, 0, 18, 24, "x")),
        leads=(Lead(-35, 0, 10, 8), Lead(35, 0, 10, 8)),
        body=(66, 66),
        body_color=palette.ALUMINIUM_CAN,
        two_terminal=False,
        draw_top=_electrolytic_top,
        weight=0.16,
    ),
)
PART_BY_NAME = {p.name: p for p in PART_TYPES}


def draw_pad(canvas: Canvas, f: Frame, pad: Pad, finish, solder_volume: float, reflowed: bool) -> None:
    """A pad with its solder: full volume covers it in a shiny fillet; less exposes the finish."""
    f.rect(canvas, pad.lx, pad.ly, pad.w, pad.h, finish, shade_u=0.05)
    if solder_volume <= 0.02:
        return
    # the fillet rises toward the part: brighter on the side facing the body centre
    toward = -np.sign(pad.lx if pad.axis == "x" else pad.ly) or 1.0
    scale = 0.45 + 0.55 * solder_volume
    w, h = pad.w * scale, pad.h * scale
    if reflowed:
        gloss = 0.15 + 0.35 * solder_volume
        shade = {"shade_u": toward * gloss} if pad.axis == "x" else {"shade_v": toward * gloss}
        dull = 0.4 + 0.6 * solder_volume  # starved joints look grainy and grey
        f.rect(canvas, pad.lx, pad.ly, w, h, tuple(c * dull for c in palette.SOLDER), soft=1.6, **shade)
    else:
        f.rect(canvas, pad.lx, pad.ly, w * 0.9, h * 0.9, palette.SOLDER_PASTE, soft=1.2)


def draw_part(canvas: Canvas, f: Frame, part: PartType, rng: np.random.Generator,
              shadow_dir: tuple[float, float]) -> None:
    """Shadow, metal leads/terminations, then the body and its markings, all in frame `f`."""
    sx, sy = shadow_dir
    f.moved(sx, sy).rect(canvas, 0, 0, part.body[0] + 2, part.body[1] + 2, palette.SHADOW, alpha=0.35, soft=3.0)
    for lead in part.leads:
        f.rect(canvas, lead.lx, lead.ly, lead.w, lead.h, palette.METAL_TERMINATION, shade_u=0.2, shade_v=0.1)
    part.draw_top(canvas, f, rng)
