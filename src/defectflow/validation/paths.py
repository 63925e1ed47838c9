"""Resolve an `image` cell of labels.csv to a file inside the data folder, or say why not.

labels.csv is input we do not control: a path must never let validation (or later stages)
read outside the data folder, neither by '..', an absolute path, nor a symlink.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

from defectflow.validation.reasons import Reason


@dataclass(frozen=True)
class ResolvedPath:
    relative: str  # normalised posix path relative to the data folder (or the raw cell when rejected)
    file: Path | None  # the file to read; None when the path was rejected
    reason: Reason | None = None
    detail: str | None = None


def resolve_image_path(root: Path, raw: str) -> ResolvedPath:
    """Check `raw` against the already-resolved data folder `root`.

    Backslashes are read as separators so that labels.csv files written on Windows work.
    """
    if not raw:
        return ResolvedPath(raw, None, Reason.MISSING_FILE, "the image column is empty")
    text = raw.replace("\\", "/")
    rel = PurePosixPath(text)
    if rel.is_absolute() or PureWindowsPath(raw).drive:
        return ResolvedPath(raw, None, Reason.PATH_ESCAPE,
                            "absolute path; labels.csv paths are relative to the data folder")
    if ".." in rel.parts:
        return ResolvedPath(raw, None, Reason.PATH_ESCAPE, "path contains '..'")
    relative = rel.as_posix()
    candidate = root / relative
    # resolve() follows every symlink on the way; without '..' or an absolute path, only a
    # symlink can take the result outside root.
    target = candidate.resolve()
    if not target.is_relative_to(root):
        link = _first_symlink(root, rel)
        if link is not None:
            return ResolvedPath(relative, None, Reason.SYMLINK_OUTSIDE,
                                f"{link} is a symlink to {target}, outside the data folder")
        return ResolvedPath(relative, None, Reason.PATH_ESCAPE, f"resolves to {target}, outside the data folder")
    if not target.exists():
        detail = "broken symlink" if candidate.is_symlink() else "file not found"
        return ResolvedPath(relative, None, Reason.MISSING_FILE, detail)
    if not target.is_file():
        return ResolvedPath(relative, None, Reason.NOT_AN_IMAGE, "a directory, not a file")
    return ResolvedPath(relative, target)


def _first_symlink(root: Path, rel: PurePosixPath) -> str | None:
    """The first component of `rel` (below root) that is a symlink, as a relative path."""
    current = root
    for i, part in enumerate(rel.parts):
        current = current / part
        if current.is_symlink():
            return PurePosixPath(*rel.parts[: i + 1]).as_posix()
    return None
