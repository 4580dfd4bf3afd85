"""Render run directories into index.html, results.json and summary.md."""

from __future__ import annotations

from pathlib import Path

import orjson

from faultlab.reports import html, results, summary
from faultlab.reports.rundir import discover


def render(run_dirs: list[Path], out_dir: Path) -> Path:
    """Write the three report files into `out_dir`; returns the index.html path.

    `run_dirs` may name run directories or folders holding them. Raises RunDirError
    when a path holds no run directory; a run directory that cannot be read is
    listed in the report as unreadable (and fails it) rather than stopping it.
    """
    doc = results.build(discover([Path(p) for p in run_dirs]))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = summary.markdown(doc)
    (out_dir / "results.json").write_bytes(
        orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))
    (out_dir / "summary.md").write_text(md, encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(html.render(doc, md), encoding="utf-8")
    return index


def summary_markdown(run_dirs: list[Path]) -> str:
    """The summary Markdown alone (for `$GITHUB_STEP_SUMMARY`), without writing files."""
    return summary.markdown(results.build(discover([Path(p) for p in run_dirs])))
