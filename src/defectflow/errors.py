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
    """The model did not clear the promotion gate."""

    exit_code = 4


class WeightsNotFoundError(DefectflowError):
    """Pretrained backbone weights could not be found or downloaded."""

    exit_code = 5
