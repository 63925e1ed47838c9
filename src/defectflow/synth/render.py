"""Render one planned image: board, part (with its defect), dust, then the camera."""

from __future__ import annotations

import copy

import numpy as np

from defectflow.synth import palette
from defectflow.synth.board import render_board
from defectflow.synth.camera import CAMERAS, DRIFT_CAMERA, CameraProfile, expose, lighting_drift, pose
from defectflow.synth.canvas import Canvas
from defectflow.synth.components import PART_BY_NAME
from defectflow.synth.defects import draw_dust, render_part_scene
from defectflow.synth.frame import Frame
from defectflow.synth.plan import ImageSpec

LAYOUT_UNITS = 128  # the output frame spans this many layout units at zoom 1: a close-up

_CAMERAS_BY_ID = {c.camera_id: c for c in (*CAMERAS, DRIFT_CAMERA)}


def camera_for(spec: ImageSpec) -> CameraProfile:
    camera = _CAMERAS_BY_ID[spec.camera_id]
    return lighting_drift(camera) if spec.lighting_drift else camera


# a pixel belongs to the defect where the scene with it differs from the same scene without it
DEFECT_DIFF = 0.06


def render_image(spec: ImageSpec, seed: int, image_size: int) -> np.ndarray:
    """The uint8 RGB image (image_size²) for `spec`; a pure function of (spec, seed, image_size)."""
    return render_with_box(spec, seed, image_size)[0]


def render_with_box(spec: ImageSpec, seed: int, image_size: int,
                    want_box: bool = False) -> tuple[np.ndarray, list[int] | None]:
    """The image and, when `want_box` and the part has a defect, the defect's pixel box
    [x0, y0, x1, y1] (x1, y1 exclusive): where the scene differs from the same scene (same random
    draws) rendered without the defect. A shifted or rotated part covers both where it is and
    where it should be. The image does not depend on `want_box`."""
    rng = np.random.default_rng([seed, 1, spec.index])
    part = PART_BY_NAME[spec.part]
    camera = camera_for(spec)
    shot = pose(camera, rng)
    unit = image_size / LAYOUT_UNITS * shot.zoom
    tint = rng.normal(1.0, 0.06, 3)  # mask batches differ slightly in shade
    mask_rgb = tuple(float(c * t) for c, t in zip(palette.SOLDER_MASK[spec.mask], tint, strict=True))
    finish = palette.PAD_FINISH[spec.finish]
    # AOI windows are cut around each part's CAD position and orientation, so the part sits
    # near the middle, upright; the camera pose moves and turns the view a little
    centre_x = image_size / 2 + (shot.offset[0] + rng.normal(0, 1)) * unit
    centre_y = image_size / 2 + (shot.offset[1] + rng.normal(0, 1)) * unit
    nominal = Frame(centre_x, centre_y, shot.rotation, unit)

    canvas = render_board(rng, image_size, nominal, part, mask_rgb, finish, camera.shadow)
    box = None
    if want_box and spec.defect:
        good = Canvas(canvas.img.copy())
        render_part_scene(good, nominal, part, finish, None, 0.0, copy.deepcopy(rng), camera.shadow)
    render_part_scene(canvas, nominal, part, finish, spec.defect or None, spec.severity, rng, camera.shadow)
    if want_box and spec.defect:
        box = _changed_box(canvas.img, good.img)
    draw_dust(canvas, nominal, rng)
    return expose(canvas.img, camera, rng), box


def _changed_box(a: np.ndarray, b: np.ndarray) -> list[int] | None:
    ys, xs = np.nonzero(np.abs(a - b).max(axis=2) > DEFECT_DIFF)
    if len(xs) == 0:
        return None
    return [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
