"""The whole story of each violating message, and the faults whose window overlaps it.

SQL picks the history rows (send, attempts, fate, every receive and show of its
content or at its rows' offsets) and the overlapping faults; the lines themselves
are read back from the file as written, so a reader sees exactly what the harness
recorded, with line numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import orjson

from faultlab.harness.checker.loader import read_rows
from faultlab.harness.checker.schema import MESSAGE_OPS, op_in

LIFE = f"""
CREATE TABLE life AS
SELECT v.key, h.rowid AS row, h.t FROM verdict v JOIN h ON h.msg = v.msg
WHERE {op_in('h.op', 'send', *MESSAGE_OPS)}
UNION
SELECT v.key, h.rowid, h.t FROM verdict v JOIN h ON h.content = v.key
WHERE {op_in('h.op', 'recv', 'show')}
UNION
SELECT v.key, d.row, d.t FROM verdict v JOIN store r ON r.content = v.key JOIN dl d ON d.off = r.id
"""

OVERLAPS = """
SELECT s.key, f.start_row, f.end_row, f.start_t, f.end_t
FROM (SELECT key, min(t) AS a, max(t) AS b FROM life GROUP BY key) s
JOIN faults f ON coalesce(f.start_t, '-inf'::DOUBLE) <= s.b
             AND coalesce(f.end_t, 'inf'::DOUBLE) >= s.a
ORDER BY s.key, coalesce(f.start_row, f.end_row)
"""

_FAULT_META = ("t", "actor", "op", "line")


def _fault(start: dict[str, Any] | None, end: dict[str, Any] | None) -> dict[str, Any]:
    source = start or end or {}
    fault = {k: v for k, v in source.items() if k not in _FAULT_META}
    fault["start"] = start["t"] if start else None
    fault["end"] = end["t"] if end else None
    return fault


def lifecycles(con: duckdb.DuckDBPyConnection, history: Path
               ) -> tuple[dict[str, list[dict[str, Any]]], dict[str, list[dict[str, Any]]]]:
    """(key -> lifecycle events and store rows, key -> overlapping faults).

    Reads `faults` (built with the model); a valid run has no lifecycle to read."""
    if con.execute("SELECT count(*) FROM verdict").fetchone() == (0,):
        return {}, {}
    con.execute(LIFE)
    life = con.execute("SELECT key, row FROM life ORDER BY key, row").fetchall()
    overlaps = con.execute(OVERLAPS).fetchall()
    stored = con.execute(
        "SELECT r.content, r.id, r.client_offset FROM store r SEMI JOIN verdict v "
        "ON r.content = v.key ORDER BY r.content, r.id"
    ).fetchall()
    wanted = {row for _, row in life}
    wanted.update(r for _, start, end, _, _ in overlaps for r in (start, end) if r is not None)
    lines = read_rows(history, wanted)
    events: dict[str, list[dict[str, Any]]] = {}
    for key, row in life:
        events.setdefault(key, []).append(lines[row])
    for content, rid, client_offset in stored:
        events.setdefault(content, []).append(
            {"op": "stored", "id": rid, "client_offset": client_offset, "content": content}
        )
    faults: dict[str, list[dict[str, Any]]] = {}
    for key, start, end, _, _ in overlaps:
        faults.setdefault(key, []).append(
            _fault(lines.get(start) if start is not None else None,
                   lines.get(end) if end is not None else None)
        )
    return events, faults


def fault_id(raw: str) -> Any:
    """A fault id as written (the column holds its JSON text)."""
    return orjson.loads(raw)
