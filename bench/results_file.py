"""Every benchmark writes its result the same way: <out>/<stem>.json (the figures) and
<out>/<stem>.md (the table people read), atomically, so a killed run leaves no half file."""

from __future__ import annotations

from pathlib import Path

from defectflow import atomic


def write_result(out_dir: Path, stem: str, result: dict, markdown: str) -> tuple[Path, Path]:
    """Write `result` as JSON and `markdown` beside it; the two paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    atomic.write_json(json_path, result)
    atomic.write_text(md_path, markdown if markdown.endswith("\n") else markdown + "\n")
    return json_path, md_path
