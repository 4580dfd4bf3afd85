"""results.json (schema 1): every number the HTML and the summary show.

Built from run directories only. The HTML and the Markdown summary render this
document and nothing else, so the three can never disagree.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from faultlab import __version__
from faultlab.reports import judge, matrix, recovery
from faultlab.reports.kinds import DESCRIPTIONS, VIOLATION_KINDS, grouped
from faultlab.reports.rundir import RunDir, RunDirError, load
from faultlab.reports.scan import HistoryScan, scan
from faultlab.reports.timeline import bin_timeline, histogram

SCHEMA = 1
LISTED_PER_KIND = 20  # violations listed in full per kind and run; the rest are counted
LIFECYCLE_EVENTS = 60  # events shown per listed violation; the rest are counted
PARAM_FIELDS = ("scenario", "level", "receive", "recovery", "transport", "target", "seed",
                "fault_kind", "replay", "schedule", "expected", "versions")


def _listed(rd: RunDir) -> dict[str, list[dict[str, Any]]]:
    vs = rd.verdict["violations"]
    return {k: list((vs.get(k) or {}).get("messages") or [])[:LISTED_PER_KIND]
            for k in VIOLATION_KINDS}


def _detail(ev: dict[str, Any]) -> str:
    op = ev["op"]
    if op == "attempt":
        return f"attempt {ev.get('n')}"
    if op in ("recv", "show"):
        return f"offset {ev.get('server_offset')}"
    if op in ("reject", "give_up"):
        return str(ev.get("error") or ev.get("reason") or "")
    if op == "send":
        offset = ev.get("client_offset")
        return "no client offset" if offset is None else f"client_offset {offset}"
    return ""


def _lifecycle(entry: dict[str, Any], sc: HistoryScan, rows: dict[str, list[int]],
               faults: list[dict[str, Any]]) -> dict[str, Any]:
    content = str(entry.get("content"))
    events = sorted(sc.lifecycles.get(content, []), key=lambda e: e["t"])
    shown = []
    for ev in events[:LIFECYCLE_EVENTS]:
        active = [f["fault"] for f in faults if f["start"] <= ev["t"] <= f["end"]]
        shown.append({"t": round(ev["t"], 6), "actor": ev["actor"], "op": ev["op"],
                      "detail": _detail(ev), "faults": active})
    shown += [{"t": None, "actor": "store", "op": "row", "detail": f"id {i}", "faults": []}
              for i in rows.get(content, [])]
    return {"msg": entry.get("msg"), "content": content,
            "clients": list(entry.get("clients") or []),
            "faults": list(entry.get("faults") or []), "lifecycle": shown,
            "lifecycle_more": max(0, len(events) - LIFECYCLE_EVENTS)}


def _mutation(params: dict[str, Any]) -> str | None:
    """The planted bug the server ran with (`--mutation NAME` in its arguments), if any."""
    args = [str(a) for a in params.get("server_args") or []]
    for i, arg in enumerate(args):
        if arg == "--mutation" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--mutation="):
            return arg.split("=", 1)[1]
    return None


def run_result(rd: RunDir, run_id: str) -> dict[str, Any]:
    """The results.json entry of one run directory."""
    listed = _listed(rd)
    watch = {str(m.get("content")) for ms in listed.values() for m in ms}
    sc = scan(rd.history, watch)
    counts = rd.counts()
    metrics = rd.verdict.get("metrics") or {}
    params = rd.params
    expected = [str(k) for k in params.get("expected") or []]
    valid = rd.verdict.get("valid")
    expect = judge.expectations(params, counts, valid)
    limits = judge.thresholds(params, counts, metrics)
    outcome, outcome_by, reasons = judge.outcome(params, expect, limits)
    faults = recovery.per_fault(sc, rd.store)
    checker_recovery = {str(x.get("fault")): x.get("seconds")
                        for x in metrics.get("recovery_time") or [] if isinstance(x, dict)}
    for f in faults:
        f["checker_recovery_seconds"] = checker_recovery.get(f["fault"])
    rows: dict[str, list[int]] = {}
    for row in rd.store:
        if str(row.get("content")) in watch:
            rows.setdefault(str(row.get("content")), []).append(row["id"])
    vs = rd.verdict["violations"]
    violations = {
        k: {"count": counts[k], "more_in_verdict": int((vs.get(k) or {}).get("more", 0)),
            "not_listed": max(0, counts[k] - len(listed[k])),
            "messages": [_lifecycle(m, sc, rows, faults) for m in listed[k]]}
        for k in VIOLATION_KINDS
    }
    return {
        "id": run_id,
        "dir": str(rd.path),
        **{f: params.get(f) for f in PARAM_FIELDS},
        "name": str(params.get("scenario") or rd.path.name),
        "level": str(params.get("level", "?")),
        "mutation": _mutation(params),
        "fault_kind": str(params.get("fault_kind") or "none"),
        "expected": expected,
        "tolerated": [str(k) for k in params.get("tolerated") or []],
        "valid": valid,
        "outcome": outcome,
        "outcome_by": outcome_by,
        "reasons": reasons,
        "counts": counts,
        "groups": grouped(counts),
        "expectation": expect,
        "thresholds": limits,
        "metrics": metrics,
        "violations": violations,
        "faults": faults,
        "reconnects_in_history": recovery.reconnect_summary(sc),
        "store_rows": len(rd.store),
        "history": {
            "events": sc.events, "duration": round(sc.duration, 6),
            "truncated_last_line": sc.truncated_last_line, "warnings": sc.warnings,
            "warning_count": sc.warning_count, "store_max_id": sc.store_max_id,
            "clients": len(sc.clients), "left": sorted(sc.left),
            "quiesce": {"start": sc.quiesce_start, "end": sc.quiesce_end, "ok": sc.quiesce_ok},
        },
        "timeline": bin_timeline(sc),
        "latency": {"ack": histogram(sc.ack_latency), "stable": histogram(sc.stable_latency)},
    }


def _environment(runs: list[dict[str, Any]]) -> dict[str, Any]:
    seen: dict[str, list[str]] = {}
    for run in runs:
        for key, value in sorted((run.get("versions") or {}).items()):
            seen.setdefault(key, [])
            if str(value) not in seen[key]:
                seen[key].append(str(value))
        for key in ("target", "transport"):
            seen.setdefault(key, [])
            if run.get(key) is not None and str(run[key]) not in seen[key]:
                seen[key].append(str(run[key]))
    return {"runs": seen,
            "rendered_by": {"faultlab": __version__, "python": platform.python_version(),
                            "machine": f"{platform.machine()} {platform.system()}"}}


def build(run_dirs: list[Path]) -> dict[str, Any]:
    """The whole results document for these run directories (already discovered)."""
    runs, unreadable = [], []
    for i, path in enumerate(run_dirs, 1):
        try:
            runs.append(run_result(load(path), f"run-{i}"))
        except RunDirError as exc:
            unreadable.append({"dir": str(path), "error": str(exc)})
    outcomes = [r["outcome"] for r in runs]
    overall = ("fail" if "fail" in outcomes or unreadable else
               "unknown" if "unknown" in outcomes or not runs else "pass")
    totals = {k: sum(r["counts"][k] for r in runs) for k in VIOLATION_KINDS}
    crossed = [{"run": r["id"], **t} for r in runs for t in r["thresholds"] if t["crossed"]]
    return {
        "schema": SCHEMA,
        "outcome": overall,
        "totals": {
            "runs": len(runs), "unreadable": len(unreadable),
            **{o: outcomes.count(o) for o in ("pass", "fail", "unknown")},
            "violations": totals,
            "groups": grouped(totals),
            "history_events": sum(r["history"]["events"] for r in runs),
        },
        "kinds": {k: DESCRIPTIONS[k] for k in VIOLATION_KINDS},
        "thresholds_crossed": crossed,
        "matrix": matrix.build(runs),
        "runs": runs,
        "unreadable": unreadable,
        "environment": _environment(runs),
    }
