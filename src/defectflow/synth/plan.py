"""The sampling plan: which board, camera, time, part and defect each image gets.

Decided up front from the seed alone (one random stream), so rendering can proceed image by
image from its own per-image stream and the result does not depend on order or batching.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np

from defectflow.errors import ConfigError
from defectflow.synth.camera import CAMERAS, DRIFT_CAMERA, DRIFT_KINDS
from defectflow.synth.components import PART_BY_NAME, PART_TYPES
from defectflow.synth.defects import choose_defect

IMAGES_PER_BOARD = (3, 7)  # inclusive range of close-ups taken of one board
SHIFT_HOURS = (6.0, 22.0)  # the line runs two shifts a day
MASK_COLOURS = {"green": 0.8, "blue": 0.2}
FINISHES = {"hasl": 0.6, "enig": 0.4}


MIN_SEVERITY = 0.5

@dataclass(frozen=True)
class ImageSpec:
    index: int
    image: str  # relative posix path inside the data folder
    captured_at: datetime
    board_id: str
    camera_id: str
    mask: str
    finish: str
    part: str
    defect: str  # "" for a good part
    severity: float
    label: str  # pass | fail | "" (unlabelled); may disagree with `defect` (label noise)
    lighting_drift: bool


def parse_instant(value: str, what: str) -> datetime:
    """An ISO date or datetime as an aware UTC datetime (naive values are taken as UTC)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"synth.{what} must be an ISO-8601 date like 2026-09-01, got {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _pick(rng: np.random.Generator, weights: dict[str, float]) -> str:
    names = list(weights)
    p = np.array([weights[k] for k in names])
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def check_params(n: int, image_size: int, days: float, defect_rate: float, label_noise: float,
                 drift_kind: str, unlabelled_share: float, cameras: int) -> None:
    problems = []
    if n < 1:
        problems.append(f"n must be at least 1 (got {n})")
    if image_size < 32:
        problems.append(f"image_size must be at least 32 pixels (got {image_size})")
    if days <= 0:
        problems.append(f"days must be positive (got {days})")
    for name, value in (("defect_rate", defect_rate), ("label_noise", label_noise),
                        ("unlabelled_share", unlabelled_share)):
        if not 0.0 <= value <= 1.0:
            problems.append(f"{name} must be within [0, 1] (got {value})")
    if drift_kind not in DRIFT_KINDS:
        problems.append(f"drift_kind must be one of {', '.join(DRIFT_KINDS)} (got {drift_kind!r})")
    if not 1 <= cameras <= len(CAMERAS):
        problems.append(f"cameras must be between 1 and {len(CAMERAS)} (got {cameras})")
    if problems:
        raise ConfigError("invalid synth parameters: " + "; ".join(problems))


def make_plan(n: int, seed: int, *, days: float, start: str, defect_rate: float, label_noise: float,
              drift_from: str | None, drift_kind: str, unlabelled_share: float, cameras: int) -> list[ImageSpec]:
    """Boards spread over `days` from `start`, a few close-ups each, in capture order."""
    rng = np.random.default_rng([seed, 0])
    t0 = parse_instant(start, "start")
    drift_at = parse_instant(drift_from, "drift_from") if drift_from else None
    n_boards_max = n // IMAGES_PER_BOARD[0] + 1
    sizes = rng.integers(IMAGES_PER_BOARD[0], IMAGES_PER_BOARD[1] + 1, n_boards_max)
    n_boards = int(np.searchsorted(np.cumsum(sizes), n) + 1)
    day = np.sort(rng.integers(0, max(int(np.ceil(days)), 1), n_boards))
    hour = rng.uniform(*SHIFT_HOURS, n_boards)
    board_times = sorted(t0 + timedelta(days=int(d), hours=float(h)) for d, h in zip(day, hour, strict=True))
    part_weights = {p.name: p.weight for p in PART_TYPES}

    specs: list[ImageSpec] = []
    for b, when in enumerate(board_times):
        board_id = f"B{b + 1:05d}"
        drifted = drift_at is not None and when >= drift_at
        camera_id = (DRIFT_CAMERA.camera_id if drifted and drift_kind == "camera"
                     else CAMERAS[int(rng.integers(cameras))].camera_id)
        mask, finish = _pick(rng, MASK_COLOURS), _pick(rng, FINISHES)
        for k in range(int(sizes[b])):
            if len(specs) == n:
                break
            part = _pick(rng, part_weights)
            is_fail = rng.random() < defect_rate
            defect = choose_defect(rng, PART_BY_NAME[part]) if is_fail else ""
            # Severities from MIN_SEVERITY up: subtle defects stay common, but not so invisible
            # that no camera could catch them (which would make the demo unlearnable, not realistic).
            severity = MIN_SEVERITY + (1 - MIN_SEVERITY) * float(rng.random()) if is_fail else 0.0
            label = "fail" if is_fail else "pass"
            if rng.random() < label_noise:
                label = "pass" if is_fail else "fail"
            if rng.random() < unlabelled_share:
                label = ""
            captured = when + timedelta(seconds=float(4 * k + rng.uniform(0, 2)))
            specs.append(ImageSpec(
                index=len(specs),
                image=f"{captured:%Y-%m-%d}/{camera_id}/{board_id}-{k + 1}.png",
                captured_at=captured, board_id=board_id, camera_id=camera_id, mask=mask, finish=finish,
                part=part, defect=defect, severity=round(severity, 3), label=label,
                lighting_drift=drifted and drift_kind == "lighting",
            ))
    return specs
