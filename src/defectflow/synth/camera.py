"""Inspection cameras: pose, optics, lighting and sensor noise, and the drift scenarios.

Each camera station sees the board slightly differently (zoom, rotation, offset, white
balance, brightness, vignetting, noise, light direction). The pose is applied by drawing the
scene in it (cheaper and sharper than resampling a rendered image); the rest is applied to
the rendered pixels. Drift replaces that with a strong
lighting change (colour cast, darker, blur) or with a new camera of a different pose, scale
and noise, so a model trained before the drift date loses AUC after it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image, ImageFilter

DRIFT_KINDS = ("lighting", "camera")


@dataclass(frozen=True)
class CameraProfile:
    camera_id: str
    gains: tuple[float, float, float]  # white balance per RGB channel
    brightness: float
    gamma: float
    noise: float  # sensor noise standard deviation, in 8-bit levels
    zoom: float
    rotation_deg: float
    offset: tuple[float, float]  # layout units
    blur: float  # Gaussian blur radius in pixels at 160 px (scaled with the image size)
    shadow: tuple[float, float]  # where part shadows fall (layout units): light direction
    vignette: float


CAMERAS: tuple[CameraProfile, ...] = (
    CameraProfile("cam-1", (1.00, 1.00, 1.00), 1.00, 1.00, 2.2, 1.00, 0.0, (0.0, 0.0), 0.0, (2.0, 2.5), 0.12),
    CameraProfile("cam-2", (1.07, 1.00, 0.90), 0.93, 1.05, 3.0, 1.05, 1.2, (2.0, -1.5), 0.0, (-2.2, 2.0), 0.18),
    CameraProfile("cam-3", (0.94, 1.00, 1.08), 1.06, 0.95, 1.8, 0.96, -0.8, (-1.5, 1.0), 0.0, (2.5, -1.5), 0.08),
)
# the replacement station of the "camera" drift: closer, turned, noisier, softer
DRIFT_CAMERA = CameraProfile("cam-9", (1.02, 0.94, 1.12), 0.86, 1.15, 6.5, 1.22, 7.0, (6.0, -4.0), 0.7, (0.0, 3.0),
                             0.30)


def lighting_drift(camera: CameraProfile) -> CameraProfile:
    """The same camera after a lamp change: warm cast, darker, lower contrast and out of focus."""
    r, g, b = camera.gains
    sx, sy = camera.shadow
    return replace(camera, gains=(r * 1.30, g * 1.0, b * 0.68), brightness=camera.brightness * 0.78,
                   gamma=camera.gamma * 1.2, blur=camera.blur + 1.1, shadow=(sx * 1.8, sy * 1.8))


@lru_cache(maxsize=16)
def _vignette(size: int, strength: float) -> np.ndarray:
    c = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    r2 = (c[None, :] ** 2 + c[:, None] ** 2) * 2.0
    return (1.0 - strength * r2)[..., None].astype(np.float32)


@lru_cache(maxsize=4)
def _noise_bank(size: int) -> np.ndarray:
    """A 2·size square of unit Gaussian sensor noise, cut at random offsets per image.

    Drawing fresh noise per image costs more than all the rest of the camera model; a fixed
    bank (from a fixed seed, so output stays deterministic) cropped at random looks the same.
    """
    return np.random.default_rng(1729).standard_normal((2 * size, 2 * size, 3), dtype=np.float32)


@dataclass(frozen=True)
class Pose:
    zoom: float
    rotation: float  # radians
    offset: tuple[float, float]  # layout units


def pose(camera: CameraProfile, rng: np.random.Generator) -> Pose:
    """This shot's camera pose: the station's mounting plus a little jitter of the board in its fixture."""
    return Pose(zoom=camera.zoom * (1 + rng.normal(0, 0.01)),
                rotation=math.radians(camera.rotation_deg + rng.normal(0, 0.5)),
                offset=(camera.offset[0] + rng.normal(0, 1.5), camera.offset[1] + rng.normal(0, 1.5)))


def expose(scene: np.ndarray, camera: CameraProfile, rng: np.random.Generator) -> np.ndarray:
    """Photograph the float scene (already in camera pose): blur, tone curve, vignetting, noise → uint8 RGB."""
    size = scene.shape[0]
    img = Image.fromarray((np.clip(scene, 0.0, 1.0) * 255 + 0.5).astype(np.uint8))
    if camera.blur > 0:
        img = img.filter(ImageFilter.GaussianBlur(camera.blur * size / 160))

    gain = np.asarray(camera.gains, dtype=np.float32) * camera.brightness * (1 + rng.normal(0, 0.03))
    levels = np.arange(256, dtype=np.float32) / 255
    lut = np.clip(levels[None, :] * gain[:, None], 0, 1) ** camera.gamma * 255
    img = img.point((lut + 0.5).astype(np.uint8).ravel().tolist())

    pixels = np.asarray(img, dtype=np.float32) * _vignette(size, camera.vignette)
    ox, oy = rng.integers(0, size, 2)
    pixels += _noise_bank(size)[oy:oy + size, ox:ox + size] * np.float32(camera.noise)
    return np.clip(pixels + 0.5, 0, 255).astype(np.uint8)
