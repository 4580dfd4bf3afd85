"""The derived tables every invariant reads, built once from `h` and `store`.

Names follow DESIGN §3.3/§3.4: `messages` (one per send, with its fate and store
rows), `run_rows` (rows newer than run_start's store_max_id), `spans` (display
sessions and the lines each covers), `dl` (every recv/show with its session, and
whether the row at its offset holds its content; its content stays in `h`, read back
only for the few bad ones, and a bad one with no row at its offset is found by an
anti join with `store`),
`clients` (who must converge: not left, and displaying), `seen` (per client,
session and offset: how often it arrived and was shown), and `faults` (each fault's
start and end). `firsts`, which only the metrics read, is built with them
(`metrics.counts`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import duckdb

from faultlab.harness.checker.errors import RunDirError
from faultlab.harness.checker.loader import physical_line, scan
from faultlab.harness.checker.schema import (
    BAD_ROW_SQL,
    FIELDS,
    MESSAGE_OPS,
    line_problem,
    op_in,
)

T = TypeVar("T")

TABLES = """
CREATE TABLE facts AS
WITH ops AS (
  SELECT op, count(*) AS rows, {present},
         arg_min(store_max_id, rowid) AS store_max_id, arg_max(ok, rowid) AS ok,
         count(*) FILTER (WHERE n > 1) AS retries,
         count(*) FILTER (WHERE recovered) AS recovered, min(t) AS t0, max(t) AS t1
  FROM h GROUP BY op)
SELECT
  coalesce(any_value(store_max_id) FILTER (WHERE op = 'run_start'), 0) AS store_max_id,
  any_value(ok) FILTER (WHERE op = 'quiesce_end') AS quiesced,
  coalesce(bool_or({incomplete}), false) AS bad,
  {counts},
  coalesce(max(t1), 0) - coalesce(min(t0), 0) AS duration
FROM ops;

CREATE TABLE msgs AS
SELECT rowid AS row, t AS send_t, actor AS sender, msg, content FROM h WHERE op = 'send';

CREATE TABLE fate AS
SELECT msg,
       bool_or(op = 'ack') AS acked, bool_or(op = 'reject') AS rejected,
       bool_or(op = 'give_up') AS given_up, min(t) FILTER (WHERE op = 'ack') AS ack_t
FROM h WHERE {message_ops} GROUP BY msg;

CREATE TABLE run_rows AS
SELECT id, client_offset, content FROM store WHERE id > (SELECT store_max_id FROM facts);

CREATE TABLE messages AS
SELECT m.*, coalesce(f.acked, false) AS acked, coalesce(f.rejected, false) AS rejected,
       coalesce(f.given_up, false) AS given_up, f.ack_t,
       coalesce(s.copies, 0) AS copies, s.first_id
FROM msgs m
LEFT JOIN fate f USING (msg)
LEFT JOIN (SELECT content, count(*) AS copies, min(id) AS first_id
           FROM run_rows GROUP BY content) s USING (content);

CREATE TABLE faults AS
SELECT fault,
       min(rowid) FILTER (WHERE op = 'fault_start') AS start_row,
       min(t) FILTER (WHERE op = 'fault_start') AS start_t,
       max(rowid) FILTER (WHERE op = 'fault_end') AS end_row,
       max(t) FILTER (WHERE op = 'fault_end') AS end_t,
       coalesce(min(kind) FILTER (WHERE op = 'fault_start'), min(kind)) AS kind
FROM h WHERE {fault_ops} GROUP BY fault;

CREATE TABLE actors AS
SELECT actor, row_number() OVER (ORDER BY actor) AS aid, left_run, displays, connects
FROM (SELECT actor, bool_or(op = 'leave') AS left_run, bool_or(op = 'connect') AS connects,
             bool_or(op IN ('session_start', 'connect', 'recv', 'show')) AS displays
      FROM (SELECT DISTINCT actor, op FROM h) GROUP BY actor);

CREATE TABLE spans AS
WITH sessions AS (
  SELECT actor, rowid AS start_row, resume_from,
         row_number() OVER (PARTITION BY actor ORDER BY rowid) AS session
  FROM h WHERE op = 'session_start')
SELECT *, lead(start_row, 1, 9223372036854775807)
            OVER (PARTITION BY actor ORDER BY start_row) AS next_row
FROM (SELECT aid << 32 AS sid, aid, actor, -1 AS start_row, 0 AS session, 0 AS resume_from
      FROM actors
      UNION ALL
      SELECT (a.aid << 32) + s.session, a.aid, s.actor, s.start_row, s.session, s.resume_from
      FROM sessions s JOIN actors a USING (actor));

CREATE TABLE dl AS
SELECT d.rowid AS row, d.t, s.sid, d.op = 'show' AS shown, d.server_offset AS off,
       d.content IS DISTINCT FROM r.content AS bad
FROM h d
JOIN spans s ON d.actor = s.actor AND d.rowid >= s.start_row AND d.rowid < s.next_row
LEFT JOIN store r ON r.id = d.server_offset
WHERE {deliveries};

CREATE TABLE clients AS
SELECT a.actor, a.aid, a.left_run, s.sid, s.session, s.resume_from
FROM actors a JOIN (SELECT aid, max_by(sid, session) AS sid FROM spans GROUP BY aid) l USING (aid)
JOIN spans s ON s.sid = l.sid
WHERE a.displays AND a.actor NOT IN ('nemesis', 'harness');

CREATE TABLE seen AS
SELECT sid, off, count(*) FILTER (WHERE NOT shown) AS recvs,
       count(*) FILTER (WHERE shown) AS shows,
       min(t) AS first_t, min(t) FILTER (WHERE shown) AS first_show
FROM dl WHERE off IS NOT NULL GROUP BY sid, off;
"""

# facts column -> (op, what is counted in its ops row)
COUNTS = {
    "run_starts": ("run_start", "rows"), "events": (None, "rows"), "sends": ("send", "rows"),
    "attempts": ("attempt", "rows"), "retries": ("attempt", "retries"),
    "connects": ("connect", "rows"), "recovered": ("connect", "recovered"),
    "recvs": ("recv", "rows"), "shows": ("show", "rows"), "faults": ("fault_start", "rows"),
    "sessions": ("session_start", "rows"),
}


# After `facts`, two independent chains: the delivery tables and the
# per-message tables. DuckDB releases the GIL while a statement runs, so the delivery
# chain runs on a second cursor while this one plans and runs the other: each
# statement's planning and its serial parts overlap the other chain's work.
DELIVERY_TABLES = ("actors", "spans", "dl", "clients", "seen")
MESSAGE_TABLES = ("msgs", "fate", "run_rows", "messages", "faults")


def on_cursor(cursor: duckdb.DuckDBPyConnection, work: Callable[..., T], *args: Any) -> T:
    """`work(cursor, *args)` on a cursor of its own (for a second thread), then closed."""
    with cursor:
        return work(cursor, *args)


def _execute_all(cursor: duckdb.DuckDBPyConnection, statements: list[str]) -> None:
    for statement in statements:
        cursor.execute(statement)


@functools.cache
def _tables() -> dict[str, str]:
    """Each statement of TABLES by the table it creates, with the per-op presence counts,
    the facts' counts and the malformed-line test.

    Counting present values per op (one small GROUP BY) is cheaper than testing every
    line; the exact line is looked for only when some op lacks a required field."""
    fields = sorted({"t", "actor"} | {f for spec in FIELDS.values()
                                      for f, (required, _) in spec.items() if required})
    incomplete = " OR ".join(
        ["op IS NULL", "has_t < rows", "has_actor < rows"]
        + [f"(op = '{op}' AND has_{field} < rows)" for op, spec in FIELDS.items()
           for field, (required, _) in spec.items() if required]
    )
    counts = ",\n  ".join(
        f"coalesce(sum({what})" + (f" FILTER (WHERE op = '{op}')" if op else "")
        + f", 0)::BIGINT AS {name}"
        for name, (op, what) in COUNTS.items()
    )
    sql = TABLES.format(present=", ".join(f"count({f}) AS has_{f}" for f in fields),
                        incomplete=incomplete, counts=counts,
                        message_ops=op_in("op", *MESSAGE_OPS),
                        deliveries=op_in("d.op", "recv", "show"),
                        fault_ops=op_in("op", "fault_start", "fault_end"))
    statements = [s for s in sql.split(";\n") if s.strip()]
    return {s.split()[2]: s for s in statements}


# Whether the sends contradict themselves, tested at once on the small tables: some
# content sent twice, some msg id sent twice, some fate naming a msg never sent. Only
# a test that finds something runs its query, which names the first offending line.
CONSISTENCY_TEST = """
SELECT (SELECT count(*) FROM (SELECT DISTINCT content FROM msgs)) < count(*),
       (SELECT count(*) FROM (SELECT DISTINCT msg FROM msgs)) < count(*),
       (SELECT count(*) > 0 FROM fate ANTI JOIN msgs USING (msg))
FROM msgs
"""
CONSISTENCY = (
    ("SELECT min(row) FROM (SELECT row, min(row) OVER (PARTITION BY content) AS first "
     "FROM msgs) WHERE row > first",
     "a second send of the same content (contents must be unique in a run)"),
    ("SELECT min(row) FROM (SELECT row, min(row) OVER (PARTITION BY msg) AS first "
     "FROM msgs) WHERE row > first",
     "a second send with the same msg id"),
    ("SELECT min(h.rowid) FROM h ANTI JOIN msgs m ON h.msg = m.msg "
     f"WHERE {op_in('h.op', *MESSAGE_OPS)}",
     "refers to a msg that was never sent"),
)


def build(con: duckdb.DuckDBPyConnection, history: Path) -> list[str]:
    """Create the derived tables; raises on a history that contradicts itself."""
    tables = _tables()
    with ThreadPoolExecutor(max_workers=1) as pool:
        deliveries = pool.submit(on_cursor, con.cursor(), _execute_all,
                                 [tables[t] for t in DELIVERY_TABLES])
        con.execute(tables["facts"])
        facts = con.execute("SELECT bad, events, quiesced, run_starts FROM facts").fetchone()
        assert facts is not None
        bad_line, events, quiesced, run_starts = facts
        if bad_line:
            deliveries.exception()
            bad = con.execute(f"SELECT min(rowid) FROM h WHERE {BAD_ROW_SQL}").fetchone()
            scan(history, line_problem)
            raise RunDirError(history, physical_line(history, bad[0] if bad else 0),
                              "malformed line")
        for table in MESSAGE_TABLES:
            con.execute(tables[table])
        tests = con.execute(CONSISTENCY_TEST).fetchone()
        assert tests is not None
        for found, (query, message) in zip(tests, CONSISTENCY, strict=True):
            row = con.execute(query).fetchone() if found else None
            if row and row[0] is not None:
                raise RunDirError(history, physical_line(history, row[0]), message)
        deliveries.result()
    warnings = []
    if events == 0:
        warnings.append(f"{history.name} is empty")
    if run_starts == 0:
        warnings.append("history has no run_start: every store row counts as the run's")
    if quiesced is None:
        warnings.append("history has no quiesce_end: convergence was not confirmed")
    return warnings
