"""Quarantine reason codes: one code per way an input row can be unusable.

The codes appear in manifest.parquet (`reason`), in reports/validation.json and in the CLI
summary, so they are stable identifiers; the descriptions are what the report shows people.
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    PATH_ESCAPE = "path_escape"
    SYMLINK_OUTSIDE = "symlink_outside"
    MISSING_FILE = "missing_file"
    ZERO_BYTE = "zero_byte"
    NOT_AN_IMAGE = "not_an_image"
    UNSUPPORTED_FORMAT = "unsupported_format"
    DECOMPRESSION_BOMB = "decompression_bomb"
    TOO_LARGE = "too_large"
    TOO_SMALL = "too_small"
    TRUNCATED = "truncated"
    UNSUPPORTED_MODE = "unsupported_mode"
    UNKNOWN_LABEL = "unknown_label"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"
    DUPLICATE_CONFLICTING_LABELS = "duplicate_conflicting_labels"
    DUPLICATE_CONTENT = "duplicate_content"


DESCRIPTIONS: dict[Reason, str] = {
    Reason.PATH_ESCAPE: "the image path is absolute, contains '..' or resolves outside the data folder",
    Reason.SYMLINK_OUTSIDE: "the image path goes through a symlink whose target is outside the data folder",
    Reason.MISSING_FILE: "labels.csv lists a file that does not exist (or the image column is empty)",
    Reason.ZERO_BYTE: "the file is empty",
    Reason.NOT_AN_IMAGE: "the file is not an image, whatever its extension says",
    Reason.UNSUPPORTED_FORMAT: "a readable image in a format outside the contract (PNG, JPEG, BMP, TIFF)",
    Reason.DECOMPRESSION_BOMB: "the pixel count exceeds validate.max_pixels",
    Reason.TOO_LARGE: "a side is longer than validate.max_side",
    Reason.TOO_SMALL: "a side is shorter than validate.min_side",
    Reason.TRUNCATED: "the header reads but the pixel data does not decode fully",
    Reason.UNSUPPORTED_MODE: "the pixel mode cannot be converted to RGB faithfully",
    Reason.UNKNOWN_LABEL: "the label is not pass, fail or empty",
    Reason.BAD_TIMESTAMP: "captured_at is missing or not ISO-8601",
    Reason.FUTURE_TIMESTAMP: "captured_at is later than now + validate.max_future_minutes",
    Reason.DUPLICATE_CONFLICTING_LABELS: "identical content (sha256) appears with different labels: "
                                         "every copy is quarantined",
    Reason.DUPLICATE_CONTENT: "identical content (sha256) already kept from an earlier capture",
}
