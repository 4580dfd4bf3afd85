"""summary.md: the short Markdown a pull request or `$GITHUB_STEP_SUMMARY` shows."""

from __future__ import annotations

from typing import Any

from faultlab.reports.kinds import VIOLATION_KINDS

ICON = {"pass": "✅", "fail": "❌", "unknown": "❔"}
STATE_ICON = {"clean": "✅", "expected": "☑️", "unexpected": "❌", "missing": "⚠️",
              "unknown": "❔"}
MAX_FAILED = 10


def _cell(cell: dict[str, Any] | None) -> str:
    if cell is None:
        return ""
    seen = ", ".join(f"{k} {n}" for k, n in cell["groups"].items() if n)
    return f"{STATE_ICON[cell['state']]} {cell['state']}" + (f" ({seen})" if seen else "")


def markdown(results: dict[str, Any], report_link: str = "index.html") -> str:
    """Render the summary from a results document (schema 1)."""
    totals = results["totals"]
    out = [
        f"## faultlab delivery report: {ICON[results['outcome']]} {results['outcome'].upper()}",
        "",
        f"{totals['runs']} runs: {totals['pass']} passed, {totals['fail']} failed, "
        f"{totals['unknown']} unknown · {totals['history_events']:,} history events",
        "",
    ]
    m = results["matrix"]
    if m["cells"]:
        cells = {(c["level"], c["fault_kind"]): c for c in m["cells"]}
        out.append("| level \\ fault | " + " | ".join(m["faults"]) + " |")
        out.append("|---|" + "---|" * len(m["faults"]))
        for level in m["levels"]:
            out.append(f"| {level} | " + " | ".join(_cell(cells.get((level, f)))
                                                  for f in m["faults"]) + " |")
        out.append("")
    failed = [r for r in results["runs"] if r["outcome"] != "pass"]
    if failed:
        out.append("**Runs that did not pass**")
        out.append("")
        for r in failed[:MAX_FAILED]:
            why = "; ".join(r["reasons"]) or "failed by the gate"
            out.append(f"- {ICON[r['outcome']]} `{r['name']}` ({r['level']}, "
                       f"{r['fault_kind']}, seed {r['seed']}): {why}")
            if r.get("replay"):
                out.append(f"  replay: `{r['replay']}`")
        if len(failed) > MAX_FAILED:
            out.append(f"- … and {len(failed) - MAX_FAILED} more")
        out.append("")
    for bad in results["unreadable"]:
        out.append(f"- ❌ unreadable run directory `{bad['dir']}`: {bad['error']}")
    total = totals["violations"]
    if any(total.values()):
        out.append("Violations: " + " · ".join(f"{k} {total[k]}" for k in VIOLATION_KINDS
                                                if total[k]))
        out.append("")
    out.append(f"Full report: [{report_link}]({report_link})")
    return "\n".join(out) + "\n"
