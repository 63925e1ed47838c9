"""Exceptions that carry a message meant for the user (what went wrong and what to do), and the
one table of exit codes every defectflow command uses.

`ExitCode` is the only place an exit status is written down: error classes (here and in the
modules that raise them) take theirs from it, and the README's exit-code table repeats it row
for row (tests/unit/test_exit_codes.py checks both).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit status of `defectflow …` and the serving entry point, with what it means for the caller."""

    meaning: str

    def __new__(cls, code: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        return member

    OK = 0, "success"
    ERROR = 1, "error (the message says what to do)"
    CONFIG = 2, "bad configuration: params file, `--set` override, missing `--data`/`--dest`/`--input`, credentials"
    DATA_QUALITY = 3, "data quality: too many rows quarantined, or labels.csv missing or malformed"
    GATE_FAILED = 4, "the model failed the gate: no model version was registered or promoted"
    WEIGHTS_MISSING = 5, "pretrained backbone weights not found"
    PROMOTION_REFUSED = 6, "promotion or rollback refused (the reasons are recorded in MLflow)"
    REGISTRY_UNAVAILABLE = 7, "the MLflow tracking server or registry is unreachable or answered with an error"
    AUC_ALERT = 8, "`defectflow monitor`: the champion's AUC is below `alerts.min_auc`"
    INGEST_STATE = 10, "`defectflow ingest`: the ingestion state is unreadable or another ingest holds the folder"
    INGEST_INCOMPLETE = 11, "`defectflow ingest`: some blobs or label rows were not ingested (everything else was)"
    BLOB_ACCESS = 12, "`defectflow ingest`: the container cannot be listed (credentials, permissions, name, network)"
    INTERRUPTED = 130, "interrupted (Ctrl-C); completed work is kept"


class DefectflowError(Exception):
    """Base class; the CLI prints these without a traceback and exits with `exit_code`."""

    exit_code = ExitCode.ERROR


class ConfigError(DefectflowError):
    """params.yaml or a --set override is invalid."""

    exit_code = ExitCode.CONFIG


class DataFolderMissingError(ConfigError):
    """A command needs the data folder and neither its argument nor params `data.dir` names one."""

    def __init__(self, message: str = "no data folder: pass --data DIR or set data.dir in params.yaml"):
        super().__init__(message)


class DataQualityError(DefectflowError):
    """Too many inputs were quarantined by validation."""

    exit_code = ExitCode.DATA_QUALITY


class GateFailedError(DefectflowError):
    """The model did not clear the promotion gate; `summary` keeps what the run produced."""

    exit_code = ExitCode.GATE_FAILED

    def __init__(self, message: str, summary: dict | None = None):
        super().__init__(message)
        self.summary = summary or {}


class WeightsNotFoundError(DefectflowError):
    """Pretrained backbone weights could not be found or downloaded."""

    exit_code = ExitCode.WEIGHTS_MISSING


class PromotionRefusedError(DefectflowError):
    """A version was not made champion (the refusal and its reasons are recorded in MLflow)."""

    exit_code = ExitCode.PROMOTION_REFUSED


class RegistryUnavailableError(DefectflowError):
    """The MLflow tracking server / registry could not be reached or answered with an error."""

    exit_code = ExitCode.REGISTRY_UNAVAILABLE
