"""index.html: the results document rendered through a Jinja2 template, charts inlined.

One self-contained file: inline CSS, inline SVG, no script, no network.
"""

from __future__ import annotations

from typing import Any

import jinja2
import matplotlib

from faultlab.reports import plots
from faultlab.reports.kinds import DESCRIPTIONS, GROUPS, VIOLATION_KINDS

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("faultlab.reports", "templates"),
    autoescape=jinja2.select_autoescape(["html", "j2"], default=True),
    trim_blocks=True,
    lstrip_blocks=True,
    undefined=jinja2.StrictUndefined,
)


def _num(value: Any, digits: int = 3) -> str:
    """Numbers as a reader wants them: thousands separators, few significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


_ENV.filters["num"] = _num


def charts(results: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Every run's charts as SVG text, keyed by run id."""
    kinds = sorted({f["kind"] for r in results["runs"] for f in r["faults"]})
    colors = plots.fault_colors(kinds)
    out = {}
    for run in results["runs"]:
        with matplotlib.rc_context(plots.STYLE):
            out[run["id"]] = {
                "timeline": plots.timeline(run, colors),
                "latency": plots.latency(run),
                "recovery": plots.recovery(run, colors) if run["faults"] else "",
                "lifecycles": plots.lifecycles(run, colors)
                if any(v["messages"] for v in run["violations"].values()) else "",
            }
    return out


def render(results: dict[str, Any], summary_md: str) -> str:
    """The whole page as a string."""
    cells = {(c["level"], c["fault_kind"]): c for c in results["matrix"]["cells"]}
    return _ENV.get_template("index.html.j2").render(
        r=results, cells=cells, charts=charts(results), kinds=VIOLATION_KINDS,
        descriptions=DESCRIPTIONS, groups=GROUPS, summary_md=summary_md,
        css=_ENV.loader.get_source(_ENV, "style.css")[0],
    )
