"""The guarantee matrix: delivery level x fault kind, over all runs reported.

A cell's state says whether what was observed is what the scenarios expected:
`clean` (nothing expected, nothing seen), `expected` (the violations a weak level is
meant to show, and only those), `unexpected` (a kind nobody expected — the red
cell), `missing` (an expected kind that did not show: the harness did not prove
detection), `unknown` (never_delivered undecided: quiescence did not converge).
"""

from __future__ import annotations

from typing import Any

from faultlab.reports.kinds import VIOLATION_KINDS, grouped

LEVEL_ORDER = ("at-most-once", "buffered", "at-least-once", "exactly-once")
STATE_RANK = {"clean": 0, "expected": 1, "unknown": 2, "missing": 3, "unexpected": 4}


def _ordered(values: set[str], preferred: tuple[str, ...] = ()) -> list[str]:
    known = [v for v in preferred if v in values]
    return known + sorted(values - set(known))


def build(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Cells keyed by (level, fault_kind), each aggregating its runs."""
    cells: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        # a run on a mutated server says what the harness detects, not what the level
        # guarantees: it gets a row of its own
        row = run["level"] + (" · mutated server" if run.get("mutation") else "")
        key = (row, run["fault_kind"])
        cell = cells.setdefault(key, {
            "level": key[0], "fault_kind": key[1], "runs": [], "expected": [], "tolerated": [],
            "observed": dict.fromkeys(VIOLATION_KINDS, 0), "unexpected": [], "missing": [],
            "state": "clean"})
        cell["runs"].append(run["id"])
        for part in ("expected", "tolerated"):
            cell[part] += [k for k in run[part] if k not in cell[part]]
        for k, n in run["counts"].items():
            cell["observed"][k] += n
        for part in ("unexpected", "missing"):
            cell[part] += [k for k in run["expectation"][part] if k not in cell[part]]
        state = ("unexpected" if run["expectation"]["unexpected"] else
                 "missing" if run["expectation"]["missing"] else
                 "unknown" if run["expectation"]["undecided"] else
                 "expected" if run["expectation"]["observed"] else "clean")
        if STATE_RANK[state] > STATE_RANK[cell["state"]]:
            cell["state"] = state
    for cell in cells.values():
        cell["groups"] = grouped(cell["observed"])
    levels = _ordered({k[0] for k in cells},
                      (*LEVEL_ORDER, *(f"{lv} · mutated server" for lv in LEVEL_ORDER)))
    faults = _ordered({k[1] for k in cells} - {"none"})
    if any(k[1] == "none" for k in cells):
        faults.insert(0, "none")
    return {"levels": levels, "faults": faults,
            "cells": [cells[(lv, f)] for lv in levels for f in faults if (lv, f) in cells]}
