"""Assembles the verdict of DESIGN §3.4 and writes verdict.json and violations.jsonl.

`valid` is false when any kind counts a message; "unknown" when quiescence did not
converge and never_delivered is the only kind above zero. Output is byte-for-byte
deterministic: every list is ordered, keys keep one order, floats are rounded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson

from faultlab.harness.checker.invariants import KINDS

LISTED = 100

Verdict = dict[str, Any]


def violations(con: duckdb.DuckDBPyConnection, events: dict[str, list[dict[str, Any]]],
               faults: dict[str, list[dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """(kind, entry) for every violating message, by kind then by send order."""
    rows = con.execute(
        "SELECT rank, key, msg, clients, how FROM verdict "
        "ORDER BY rank, send_row NULLS LAST, key"
    ).fetchall()
    out = []
    for rank, key, msg, clients, how in rows:
        entry: dict[str, Any] = {"msg": msg, "content": key, "clients": clients or []}
        if how is not None:
            entry["how"] = how
        entry["lifecycle"] = events.get(key, [])
        entry["faults"] = faults.get(key, [])
        out.append((KINDS[rank], entry))
    return out


def assemble(found: list[tuple[str, dict[str, Any]]], metrics: dict[str, Any],
             warnings: list[str]) -> Verdict:
    """The verdict dict; every kind present, at most LISTED messages each."""
    kinds: dict[str, dict[str, Any]] = {
        kind: {"count": 0, "messages": [], "more": 0} for kind in KINDS
    }
    kinds["lost"].update({"silent": 0, "given_up": 0})
    for kind, entry in found:
        slot = kinds[kind]
        slot["count"] += 1
        if len(slot["messages"]) < LISTED:
            slot["messages"].append(entry)
        else:
            slot["more"] += 1
        if kind == "lost":
            slot[entry["how"]] += 1
    counted = {kind for kind, slot in kinds.items() if slot["count"]}
    valid: bool | str = not counted
    if counted == {"never_delivered"} and not metrics["converged"]:
        valid = "unknown"
    return {"valid": valid, "violations": kinds, "metrics": metrics, "warnings": warnings}


def write(run_dir: Path, verdict: Verdict, found: list[tuple[str, dict[str, Any]]]) -> None:
    """verdict.json (indented) and violations.jsonl (one message per line, all of them)."""
    (run_dir / "verdict.json").write_bytes(
        orjson.dumps(verdict, option=orjson.OPT_INDENT_2) + b"\n"
    )
    with open(run_dir / "violations.jsonl", "wb") as out:
        for kind, entry in found:
            out.write(orjson.dumps({"kind": kind, **entry}) + b"\n")
