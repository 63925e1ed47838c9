"""Assembly defects and how each one changes the rendered part.

Every defect has a severity in [0, 1]: at the low end it is a few pixels of shift, a couple
of degrees of rotation, a hairline bridge or a faint residue (hard even for people), at the
high end it is obvious. Passing parts get the normal placement tolerance and solder spread,
so small defects overlap with good parts — which keeps the demo from being trivially
separable.
"""

from __future__ import annotations

import math

import numpy as np

from defectflow.synth import palette
from defectflow.synth.canvas import Canvas
from defectflow.synth.components import PartType, draw_pad, draw_part
from defectflow.synth.frame import Frame

# relative frequency of each defect among failing images
DEFECT_WEIGHTS: dict[str, float] = {
    "missing": 0.07,
    "shifted": 0.17,
    "rotated": 0.15,
    "solder_bridge": 0.15,
    "insufficient_solder": 0.16,
    "tombstone": 0.12,
    "scratch": 0.08,
    "contamination": 0.10,
}
DEFECT_TYPES = tuple(DEFECT_WEIGHTS)


def choose_defect(rng: np.random.Generator, part: PartType) -> str:
    """A defect that can happen to `part` (only two-terminal chips tombstone)."""
    kinds = [k for k in DEFECT_TYPES if k != "tombstone" or part.two_terminal]
    weights = np.array([DEFECT_WEIGHTS[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def render_part_scene(canvas: Canvas, nominal: Frame, part: PartType, finish, defect: str | None,
                      severity: float, rng: np.random.Generator, shadow_dir: tuple[float, float]) -> None:
    """Pads, solder and the part in `nominal` placement, with `defect` (None = a good part) applied."""
    solder = rng.uniform(0.8, 1.0, size=len(part.pads))
    # normal pick-and-place tolerance: good parts are never perfectly centred either
    body = nominal.moved(rng.normal(0, 0.8), rng.normal(0, 0.8), math.radians(rng.normal(0, 0.7)))
    if defect == "shifted":
        direction = rng.uniform(0, 2 * math.pi)
        distance = 5.0 + 14.0 * severity
        body = body.moved(distance * math.cos(direction), distance * math.sin(direction))
    elif defect == "rotated":
        body = body.moved(0, 0, rng.choice([-1, 1]) * math.radians(8.0 + 22.0 * severity))
    elif defect == "insufficient_solder":
        starved = rng.random(len(part.pads)) < 0.8
        starved[rng.integers(len(part.pads))] = True
        solder[starved] = np.clip(0.3 - 0.3 * severity + rng.normal(0, 0.04, starved.sum()), 0.0, 0.4)
    elif defect == "tombstone":
        lifted = int(rng.integers(2))
        solder[lifted] = 0.35

    for pad, volume in zip(part.pads, solder, strict=True):
        draw_pad(canvas, nominal, pad, finish, float(volume), reflowed=defect != "missing")

    if defect == "missing":
        if part.two_terminal and rng.random() < 0.5:
            nominal.ellipse(canvas, 0, 0, 5, 4, palette.GLUE_DOT, radial_shade=0.2)
    elif defect == "tombstone":
        _draw_tombstone(canvas, body, part, lifted, severity, shadow_dir)
    else:
        draw_part(canvas, body, part, rng, shadow_dir)

    if defect == "solder_bridge":
        _draw_bridge(canvas, nominal, part, severity, rng)
    elif defect == "scratch":
        _draw_scratch(canvas, nominal, severity, rng)
    elif defect == "contamination":
        _draw_contamination(canvas, nominal, severity, rng)


def _draw_tombstone(canvas: Canvas, f: Frame, part: PartType, lifted: int, severity: float,
                    shadow_dir: tuple[float, float]) -> None:
    """One end of a chip stands up: seen from above the body is foreshortened toward the other pad."""
    theta = math.radians(45 + 40 * severity)
    length, width = part.body
    thickness = 16.0
    side = -1.0 if lifted == 1 else 1.0  # the end that stays down sits at x = side * length/2
    projected = length * math.cos(theta) + thickness * math.sin(theta)
    centre = side * (length - projected) / 2
    sx, sy = shadow_dir
    f.moved(sx * (1 + 2 * severity), sy * (1 + 2 * severity)).rect(
        canvas, centre, 0, projected + 2, width + 2, palette.SHADOW, alpha=0.4, soft=3.0)
    tilt = 0.75 + 0.25 * math.cos(theta)  # the tilted top catches less light
    f.rect(canvas, centre, 0, projected, width, tuple(c * tilt for c in part.body_color), shade_u=-side * 0.2)
    cap = 10 * math.cos(theta) + thickness * math.sin(theta)
    f.rect(canvas, side * (length / 2 - 5 * math.cos(theta)), 0, 10 * math.cos(theta), width,
           palette.METAL_TERMINATION, shade_u=0.2)
    f.rect(canvas, centre - side * (projected - cap) / 2, 0, cap, width,
           tuple(min(1.0, c * 1.08) for c in palette.METAL_TERMINATION), shade_u=side * 0.25)


def _draw_bridge(canvas: Canvas, f: Frame, part: PartType, severity: float, rng: np.random.Generator) -> None:
    """Solder joining two pads of a multi-lead part, or splashing from a chip pad toward its neighbour."""
    width = 3.0 + 7.0 * severity
    if not part.two_terminal and len(part.pads) >= 3:
        pairs = [(a, b) for i, a in enumerate(part.pads) for b in part.pads[i + 1:]
                 if a.ly == b.ly and abs(a.lx - b.lx) < 40]
        a, b = pairs[int(rng.integers(len(pairs)))]
        offset = rng.uniform(-0.3, 0.3) * a.h
        f.line(canvas, a.lx, a.ly + offset, b.lx, b.ly + offset, width, palette.SOLDER, alpha=0.9 + 0.1 * severity)
        return
    pad = part.pads[int(rng.integers(len(part.pads)))]
    direction = rng.choice([-1.0, 1.0])
    end = pad.ly + direction * (pad.h / 2 + 12 + 20 * severity)
    f.line(canvas, pad.lx, pad.ly, pad.lx, end, width, palette.SOLDER, alpha=0.9 + 0.1 * severity)
    f.ellipse(canvas, pad.lx, end, width * 0.8, width * 0.8, palette.SOLDER, radial_shade=0.3)


def _random_spot(rng: np.random.Generator) -> tuple[float, float]:
    """A point within the inspected window (layout units around the part centre)."""
    return float(rng.uniform(-40, 40)), float(rng.uniform(-40, 40))


def _draw_scratch(canvas: Canvas, f: Frame, severity: float, rng: np.random.Generator) -> None:
    """A scratch through the solder mask: a thin bright line, copper showing through when deep."""
    x, y = _random_spot(rng)
    angle = rng.uniform(0, math.pi)
    half = 20 + 35 * severity
    colour = palette.BARE_COPPER if rng.random() < 0.5 else (0.75, 0.80, 0.74)
    f.line(canvas, x - half * math.cos(angle), y - half * math.sin(angle),
           x + half * math.cos(angle), y + half * math.sin(angle),
           1.5 + 2.0 * severity, colour, alpha=0.6 + 0.4 * severity)


def _draw_contamination(canvas: Canvas, f: Frame, severity: float, rng: np.random.Generator) -> None:
    """Flux residue (translucent amber stain) or debris (a dark particle or fibre)."""
    x, y = _random_spot(rng)
    if rng.random() < 0.5:
        r = 12 + 14 * severity
        f.ellipse(canvas, x, y, r, r * rng.uniform(0.5, 1.0), palette.FLUX_RESIDUE,
                  alpha=0.6 + 0.35 * severity, radial_shade=0.3, soft=2.0)
        return
    if rng.random() < 0.5:
        f.ellipse(canvas, x, y, 5 + 5 * severity, 4 + 4 * severity, palette.DEBRIS, alpha=0.85 + 0.15 * severity)
        return
    angle = rng.uniform(0, math.pi)  # a fibre: a few joined strokes with a gentle bend
    for _ in range(3):
        step = 10 + 10 * severity
        nx, ny = x + step * math.cos(angle), y + step * math.sin(angle)
        f.line(canvas, x, y, nx, ny, 1.6 + 1.0 * severity, palette.DEBRIS, alpha=0.7 + 0.3 * severity)
        x, y, angle = nx, ny, angle + rng.normal(0, 0.4)


def draw_dust(canvas: Canvas, f: Frame, rng: np.random.Generator) -> None:
    """Harmless specks every image has a few of (so tiny marks alone do not mean 'fail')."""
    for _ in range(int(rng.integers(0, 4))):
        x, y = float(rng.uniform(-75, 75)), float(rng.uniform(-75, 75))
        f.ellipse(canvas, x, y, 0.9, 0.9, (0.85, 0.85, 0.8), alpha=float(rng.uniform(0.15, 0.4)))
