"""History format 1 and store rows as the checker reads them (DESIGN §3.3).

One place for the ops, the columns the checker loads, and the per-line rules: the
fast path lets DuckDB parse and a SQL query detect a bad line, then `line_problem`
(the same rules, in Python) names the exact line and what is wrong with it.
"""

from __future__ import annotations

from typing import Any

HISTORY_FORMAT = 1

OPS: tuple[str, ...] = (
    "run_start", "session_start", "send", "attempt", "ack", "reject", "give_up",
    "recv", "show", "connect", "disconnect", "leave", "fault_start", "fault_end",
    "fault_fired", "quiesce_start", "quiesce_end",
)
MESSAGE_OPS = ("attempt", "ack", "reject", "give_up")
NOT_CLIENTS = ("nemesis", "harness")

_OP_ENUM = "ENUM(" + ",".join(f"''{op}''" for op in OPS) + ")"


def op_in(column: str, *ops: str) -> str:
    """SQL testing that the op ENUM `column` is one of `ops`, by its code.

    DuckDB tests an ENUM against an IN list of strings row by row as text; comparing
    the code is as cheap as no filter at all (half the cost of the recv/show scan)."""
    return f"enum_code({column}) IN ({', '.join(str(OPS.index(op)) for op in ops)})"

# Only what an invariant or metric reads; the rest of a line is read back raw for lifecycles.
HISTORY_COLUMNS: dict[str, str] = {
    "t": "DOUBLE", "actor": "VARCHAR", "op": _OP_ENUM, "msg": "VARCHAR",
    "content": "VARCHAR", "server_offset": "BIGINT", "n": "BIGINT", "recovered": "BOOLEAN",
    "ok": "BOOLEAN", "store_max_id": "BIGINT", "resume_from": "BIGINT", "fault": "JSON",
    "kind": "VARCHAR",
}
STORE_COLUMNS: dict[str, str] = {"id": "BIGINT", "client_offset": "VARCHAR", "content": "VARCHAR"}

# op -> {field: (required, allowed types)}; bool is excluded from numbers explicitly.
_INT = (int,)
_STR = (str,)
FIELDS: dict[str, dict[str, tuple[bool, tuple[type, ...]]]] = {
    "run_start": {"store_max_id": (True, _INT)},
    "session_start": {"resume_from": (True, _INT)},
    "send": {"msg": (True, _STR), "content": (True, _STR),
             "client_offset": (False, (str, type(None)))},
    "attempt": {"msg": (True, _STR), "n": (True, _INT)},
    "ack": {"msg": (True, _STR)},
    "reject": {"msg": (True, _STR)},
    "give_up": {"msg": (True, _STR)},
    "recv": {"content": (True, _STR), "server_offset": (False, (int, type(None)))},
    "show": {"content": (True, _STR), "server_offset": (False, (int, type(None)))},
    "connect": {"recovered": (False, (bool, type(None)))},
    "fault_start": {"fault": (True, (str, int)), "kind": (False, (str, type(None)))},
    "fault_end": {"fault": (True, (str, int)), "kind": (False, (str, type(None)))},
    "quiesce_end": {"ok": (True, (bool,))},
}

# SQL twin of `line_problem` for the columns loaded: any row it matches is re-checked in Python.
BAD_ROW_SQL = " OR ".join(
    ["t IS NULL", "actor IS NULL", "op IS NULL"]
    + [
        f"(op = '{op}' AND {field} IS NULL)"
        for op, fields in FIELDS.items()
        for field, (required, _) in fields.items()
        if required
    ]
)


def _is(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def line_problem(event: Any) -> str | None:
    """What is wrong with one parsed history line, or None when it is well formed."""
    if not isinstance(event, dict):
        return "not a JSON object"
    if not _is(event.get("t"), (int, float)):
        return "'t' must be a number"
    if not isinstance(event.get("actor"), str):
        return "'actor' must be a string"
    op = event.get("op")
    if op not in OPS:
        return f"unknown op {op!r}"
    for field, (required, types) in FIELDS.get(op, {}).items():
        if field not in event:
            if required:
                return f"{op} needs '{field}'"
            continue
        if not _is(event[field], types):
            names = "/".join("null" if t is type(None) else t.__name__ for t in types)
            return f"{op} '{field}' must be {names}, not {event[field]!r}"
    return None


def row_problem(row: Any) -> str | None:
    """What is wrong with one store row, or None."""
    if not isinstance(row, dict):
        return "not a JSON object"
    if not _is(row.get("id"), _INT):
        return "'id' must be an integer"
    if not isinstance(row.get("content"), str):
        return "'content' must be a string"
    if not _is(row.get("client_offset"), (str, type(None))):
        return "'client_offset' must be a string or null"
    return None
