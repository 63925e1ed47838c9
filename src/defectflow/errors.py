"""Exceptions that carry a message meant for the user: what went wrong and what to do."""


class DefectflowError(Exception):
    """Base class; the CLI prints these without a traceback and exits non-zero."""

    exit_code = 1


class ConfigError(DefectflowError):
    """params.yaml or a --set override is invalid."""

    exit_code = 2


class DataQualityError(DefectflowError):
    """Too many inputs were quarantined by validation."""

    exit_code = 3


class GateFailedError(DefectflowError):
    """The model did not clear the promotion gate; `summary` keeps what the run produced."""

    exit_code = 4

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary or {}


class WeightsNotFoundError(DefectflowError):
    """Pretrained backbone weights could not be found or downloaded."""

    exit_code = 5


class PromotionRefusedError(DefectflowError):
    """A version was not made champion (the refusal and its reasons are recorded in MLflow)."""

    exit_code = 6


class RegistryUnavailableError(DefectflowError):
    """The MLflow tracking server / registry could not be reached or answered with an error."""

    exit_code = 7
