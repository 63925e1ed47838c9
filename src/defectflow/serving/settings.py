"""Scoring-service configuration, read from environment variables (the container's interface).

Every setting has a DEFECTFLOW_ variable; `defectflow serve` flags override them. The API key
is excluded from repr and never appears in logs or error messages.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from defectflow.errors import ConfigError

ENV_PREFIX = "DEFECTFLOW_"
DEFAULT_PORT = 8080  # 5000 is commonly taken (and is on this machine)


@dataclass(frozen=True)
class ServingSettings:
    model_dir: Path = Path("bundle")  # an edge bundle written by `defectflow export`
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    # Authentication of the prediction routes by the X-API-Key header; on unless turned off.
    auth_enabled: bool = True
    api_key: str = field(default="", repr=False)
    max_request_bytes: int = 20 * 1024 * 1024  # whole request body, checked before parsing
    max_image_bytes: int = 10 * 1024 * 1024  # each uploaded file
    max_pixels: int = 40_000_000  # per image, from the header (decompression bombs)
    min_side: int = 16
    max_side: int = 12_000
    max_batch: int = 32  # files per /v1/predict/batch request
    inference_threads: int = 0  # onnxruntime intra-op threads; 0 = one per core
    max_concurrent_inferences: int = 4  # graph runs in flight; more requests wait their turn
    extra_routers: tuple[str, ...] = ()  # "module:attribute" routers to mount (e.g. the dashboard)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> ServingSettings:
        """Build from DEFECTFLOW_<FIELD> variables; keyword overrides (CLI flags) win when not None."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if self.auth_enabled and not self.api_key:
            raise ConfigError("API key authentication is on but DEFECTFLOW_API_KEY is empty: set it, or turn "
                              "authentication off explicitly with DEFECTFLOW_AUTH_ENABLED=false")
        for name in ("max_request_bytes", "max_image_bytes", "max_pixels", "max_batch", "max_concurrent_inferences"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{ENV_PREFIX}{name.upper()} must be positive, got {getattr(self, name)}")

    def with_overrides(self, **overrides: Any) -> ServingSettings:
        settings = replace(self, **{k: v for k, v in overrides.items() if v is not None})
        settings.check()
        return settings


def _parse(name: str, type_name: Any, raw: str) -> Any:
    kind = str(type_name)
    try:
        if kind == "bool":
            lowered = raw.strip().lower()
            if lowered not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
                raise ValueError(raw)
            return lowered in {"1", "true", "yes", "on"}
        if kind == "int":
            return int(raw)
        if kind == "Path":
            return Path(raw)
        if kind.startswith("tuple"):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return raw
    except ValueError:
        shown = "<hidden>" if name == "api_key" else repr(raw)
        raise ConfigError(f"{ENV_PREFIX}{name.upper()}={shown} is not a valid {kind}") from None
