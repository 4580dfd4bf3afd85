"""Turns run directories into the delivery report.

`render` and `summary_markdown` are imported lazily so that `faultlab --help`, which
reads COMMANDS, does not pay for matplotlib.
"""

from __future__ import annotations

from pathlib import Path

COMMANDS = {"report": "faultlab.reports.cli:command"}


def render(run_dirs: list[Path], out_dir: Path) -> Path:
    """Write index.html, results.json and summary.md into out_dir; return index.html."""
    from faultlab.reports.render import render as _render

    return _render(run_dirs, out_dir)


def summary_markdown(run_dirs: list[Path]) -> str:
    """The short Markdown summary of these run directories (for a PR / step summary)."""
    from faultlab.reports.render import summary_markdown as _summary

    return _summary(run_dirs)


__all__ = ["COMMANDS", "render", "summary_markdown"]
