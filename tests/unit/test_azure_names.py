"""Blob names → local paths: everything that could escape the destination or be ambiguous is refused."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from defectflow.azure.blob_source import UnsafeBlobName, safe_relative_path


@pytest.mark.parametrize("name, expected", [
    ("2026-09-02/cam-1/B00001-1.png", "2026-09-02/cam-1/B00001-1.png"),
    ("line1/labels.csv", "line1/labels.csv"),
    ("ünïcödé/ok.png", "ünïcödé/ok.png"),  # NFC-normalised accented letters are fine
    ("a..b/c...png", "a..b/c...png"),       # dots inside a segment are not traversal
])
def test_ordinary_names_map_to_relative_paths(name, expected):
    assert safe_relative_path(name) == PurePosixPath(expected)


def test_prefix_is_stripped_and_required():
    assert safe_relative_path("line1/x/1.png", "line1/") == PurePosixPath("x/1.png")
    with pytest.raises(UnsafeBlobName, match="not under prefix"):
        safe_relative_path("line2/x/1.png", "line1/")


@pytest.mark.parametrize("name, reason", [
    ("", "empty"),
    ("../x.png", "'..'"),
    ("a/../../x.png", "'..'"),
    ("a/./x.png", "'.'"),
    ("..", "'..'"),
    ("/etc/passwd.png", "absolute"),
    ("C:/Windows/x.png", "drive letter"),
    ("a\\..\\x.png", "backslash"),
    ("a//x.png", "empty"),
    ("dir/", "empty"),
    ("a/nul\x00.png", "U+0000"),
    ("a/bell\x07.png", "U+0007"),
    ("a/new\nline.png", "U+000A"),
    ("a/rtl\u202egnp.png", "U+202E"),
    ("a/zero\u200bwidth.png", "U+200B"),
    ("a\u2028b.png", "U+2028"),
    ("a/full\uff0f..\uff0fwidth.png", "NFKC"),
    ("a/\uff0e\uff0e/x.png", "NFKC"),          # fullwidth dots
    ("a/decomposed-e\u0301.png", "NFKC"),      # not in normal form: two spellings of one name
    ("a/" + "x" * 256 + ".png", "longer than"),
])
def test_hostile_names_are_rejected_with_a_reason(name, reason):
    with pytest.raises(UnsafeBlobName) as err:
        safe_relative_path(name)
    assert reason in str(err.value)
