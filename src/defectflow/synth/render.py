"""Render one planned image: board, part (with its defect), dust, then the camera."""

from __future__ import annotations


import numpy as np

from defectflow.synth import palette
from defectflow.synth.board import render_board
from defectflow.synth.camera import CAMERAS, DRIFT_CAMERA, CameraProfile, expose, lighting_drift, pose
from defectflow.synth.components import PART_BY_NAME
from defectflow.synth.defects import draw_dust, render_part_scene
from defectflow.synth.frame import Frame
from defectflow.synth.plan import ImageSpec

LAYOUT_UNITS = 128  # the output frame spans this many layout units at zoom 1: a close-up

_CAMERAS_BY_ID = {c.camera_id: c for c in (*CAMERAS, DRIFT_CAMERA)}


def camera_for(spec: ImageSpec) -> CameraProfile:
    camera = _CAMERAS_BY_ID[spec.camera_id]
    return lighting_drift(camera) if spec.lighting_drift else camera


def render_image(spec: ImageSpec, seed: int, image_size: int) -> np.ndarray:
    """The uint8 RGB image (image_size²) for `spec`; a pure function of (spec, seed, image_size)."""
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
    render_part_scene(canvas, nominal, part, finish, spec.defect or None, spec.severity, rng, camera.shadow)
    draw_dust(canvas, nominal, rng)
    return expose(canvas.img, camera, rng)
