"""The bare board around the inspected part: solder mask with fibre-weave grain and mottling,
copper traces under the mask, vias, silkscreen, and neighbouring parts cut by the frame."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from PIL import Image

from defectflow.synth import palette
from defectflow.synth.canvas import Canvas
from defectflow.synth.components import PART_BY_NAME, PartType, draw_pad, draw_part
from defectflow.synth.frame import Frame


@lru_cache(maxsize=4)
def _mask_texture(size: int) -> np.ndarray:
    """A 3·size square of solder-mask texture (multiplicative, around 1), cut at random per image.

    Glass-fibre weave seen through the mask, fine grain, and low-frequency unevenness of the
    coat. Built once per image size from a fixed seed: a random crop is as good as a fresh
    texture and costs one slice instead of a full-frame synthesis per image.
    """
    rng = np.random.default_rng(20260901)
    n = 3 * size
    coords = np.arange(n, dtype=np.float32)
    period = max(size / 22.0, 3.0)
    a = np.sin(2 * np.pi * (coords[None, :] + coords[:, None]) / period)
    b = np.sin(2 * np.pi * (coords[None, :] - coords[:, None]) / period)
    grain = rng.normal(0, 1, (n, n)).astype(np.float32)
    coarse = Image.fromarray(rng.normal(0, 1, (15, 15)).astype(np.float32), mode="F")
    mottling = np.asarray(coarse.resize((n, n), Image.BILINEAR), dtype=np.float32)
    return (1.0 + 0.025 * a * b + 0.018 * grain + 0.045 * mottling).astype(np.float32)


def render_board(rng: np.random.Generator, size: int, nominal: Frame, part: PartType, mask_rgb,
                 finish, shadow_dir: tuple[float, float]) -> Canvas:
    """A canvas of `size` pixels with everything except the inspected part itself."""
    ox, oy = rng.integers(0, 2 * size, 2)
    texture = _mask_texture(size)[oy:oy + size, ox:ox + size, None]
    image = texture * np.asarray(mask_rgb, dtype=np.float32)
    canvas = Canvas(image)

    trace = tuple(min(1.0, c * 1.35 + t) for c, t in zip(mask_rgb, (0.05, 0.03, 0.0), strict=True))
    reach = 3.0 * size / nominal.unit  # far enough to leave the canvas
    for pad in part.pads:  # each pad routes straight out along its lead axis
        out = math.copysign(reach, pad.lx if pad.axis == "x" else pad.ly)
        end = (pad.lx + out, pad.ly) if pad.axis == "x" else (pad.lx, pad.ly + out)
        nominal.line(canvas, pad.lx, pad.ly, *end, min(pad.w, pad.h) * rng.uniform(0.35, 0.6), trace)
    for _ in range(int(rng.integers(1, 4))):  # unrelated traces passing by
        offset = rng.choice([-1, 1]) * rng.uniform(part.extent + 8, part.extent + 30)
        width = rng.uniform(3, 7)
        if rng.random() < 0.5:
            nominal.line(canvas, -reach, offset, reach, offset, width, trace)
        else:
            nominal.line(canvas, offset, -reach, offset, reach, width, trace)
    for _ in range(int(rng.integers(0, 4))):  # vias: plated ring with a dark drill hole
        angle = rng.uniform(0, 2 * math.pi)
        dist = rng.uniform(part.extent + 6, part.extent + 30)
        vx, vy = dist * math.cos(angle), dist * math.sin(angle)
        nominal.ellipse(canvas, vx, vy, 5, 5, finish, radial_shade=0.2)
        nominal.ellipse(canvas, vx, vy, 2.2, 2.2, (0.05, 0.05, 0.05))

    # silkscreen outline of the courtyard and a reference-designator stub
    e = part.extent + 5
    for x0, y0, x1, y1 in ((-e, -e, e, -e), (e, -e, e, e), (e, e, -e, e), (-e, e, -e, -e)):
        nominal.line(canvas, x0, y0, x1, y1, 1.6, palette.SILKSCREEN, alpha=0.85)
    for k in range(int(rng.integers(2, 4))):
        nominal.rect(canvas, -e + 3 + 6 * k, -e - 7, 4, 7, palette.SILKSCREEN, alpha=0.8)

    neighbour = PART_BY_NAME["chip_resistor" if rng.random() < 0.5 else "chip_capacitor"]
    for _ in range(int(rng.random() < 0.5)):  # a neighbouring part, mostly outside the frame
        angle = rng.uniform(0, 2 * math.pi)
        dist = part.extent + rng.uniform(40, 60)
        f = nominal.moved(dist * math.cos(angle), dist * math.sin(angle), rng.choice([0.0, math.pi / 2]))
        for pad in neighbour.pads:
            draw_pad(canvas, f, pad, finish, float(rng.uniform(0.8, 1.0)), reflowed=True)
        draw_part(canvas, f, neighbour, rng, shadow_dir)
    return canvas
