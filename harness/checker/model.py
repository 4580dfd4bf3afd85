"""The derived tables every invariant reads, built once from `h` and `store`.

Names follow DESIGN §3.3/§3.4: `messages` (one per send, with its fate and store
rows), `run_rows` (rows newer than run_start's store_max_id), `sessions` (display
sessions), `dl` (every recv/show with its session, and whether the row at its offset
holds its content; its content stays in `h`, read back only for the few bad ones) and
`clients` (who must converge: not left, and displaying) and `seen` (per client,
session and offset: how often it arrived and was shown).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from faultlab.harness.checker.errors import RunDirError
from faultlab.harness.checker.loader import physical_line, scan
from faultlab.harness.checker.schema import BAD_ROW_SQL, line_problem

TABLES = """
CREATE TABLE facts AS SELECT
  coalesce(arg_min(store_max_id, rowid) FILTER (WHERE op = 'run_start'), 0) AS store_max_id,
  arg_max(ok, rowid) FILTER (WHERE op = 'quiesce_end') AS quiesced,
  count(*) FILTER (WHERE op = 'run_start') AS run_starts,
  min(rowid) FILTER (WHERE {bad_row}) AS bad_row,
  count(*) AS events,
  count(*) FILTER (WHERE op = 'send') AS sends,
  count(*) FILTER (WHERE op = 'attempt') AS attempts,
  count(*) FILTER (WHERE op = 'attempt' AND n > 1) AS retries,
  count(*) FILTER (WHERE op = 'connect') AS connects,
  count(*) FILTER (WHERE op = 'connect' AND recovered) AS recovered,
  count(*) FILTER (WHERE op = 'recv') AS recvs,
  count(*) FILTER (WHERE op = 'show') AS shows,
  count(*) FILTER (WHERE op = 'fault_start') AS faults,
  count(*) FILTER (WHERE op = 'session_start') AS sessions,
  coalesce(max(t), 0) - coalesce(min(t), 0) AS duration
FROM h;

CREATE TABLE msgs AS
SELECT rowid AS row, t AS send_t, actor AS sender, msg, content FROM h WHERE op = 'send';

CREATE TABLE fate AS
SELECT msg,
       bool_or(op = 'ack') AS acked, bool_or(op = 'reject') AS rejected,
       bool_or(op = 'give_up') AS given_up, min(t) FILTER (WHERE op = 'ack') AS ack_t
FROM h WHERE op IN ('attempt', 'ack', 'reject', 'give_up') GROUP BY msg;

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

CREATE TABLE sessions AS
SELECT actor, rowid AS start_row, t AS start_t, resume_from,
       row_number() OVER (PARTITION BY actor ORDER BY rowid) AS session
FROM h WHERE op = 'session_start';

CREATE TABLE dl AS
WITH s AS (
  SELECT *, lead(start_row, 1, 9223372036854775807)
              OVER (PARTITION BY actor ORDER BY start_row) AS next_row
  FROM sessions)
SELECT d.row, d.t, d.actor, d.op = 'show' AS shown, d.server_offset AS off,
       coalesce(s.session, 0) AS session, coalesce(s.resume_from, 0) AS resume_from,
       r.id IS NULL AS norow, d.content IS DISTINCT FROM r.content AS bad
FROM (SELECT rowid AS row, t, actor, op, content, server_offset
      FROM h WHERE op IN ('recv', 'show')) d
LEFT JOIN s ON d.actor = s.actor AND d.row >= s.start_row AND d.row < s.next_row
LEFT JOIN store r ON r.id = d.server_offset;

CREATE TABLE clients AS
SELECT c.actor, c.left_run, coalesce(s.session, 0) AS session,
       coalesce(s.resume_from, 0) AS resume_from
FROM (SELECT actor, bool_or(op = 'leave') AS left_run,
             bool_or(op IN ('session_start', 'connect', 'recv', 'show')) AS displays
      FROM h WHERE actor NOT IN ('nemesis', 'harness') GROUP BY actor) c
LEFT JOIN (SELECT actor, max_by(session, session) AS session,
                  max_by(resume_from, session) AS resume_from
           FROM sessions GROUP BY actor) s USING (actor)
WHERE c.displays;

CREATE TABLE seen AS
SELECT actor, session, off,
       count(*) FILTER (WHERE NOT shown) AS recvs, count(*) FILTER (WHERE shown) AS shows,
       min(t) AS first_t, min(t) FILTER (WHERE shown) AS first_show
FROM dl WHERE off IS NOT NULL GROUP BY actor, session, off;
"""

# (query returning the offending rowid, message); each names the first offending line.
CONSISTENCY = (
    ("SELECT min(row) FROM (SELECT row, min(row) OVER (PARTITION BY content) AS first "
     "FROM msgs) WHERE row > first",
     "a second send of the same content (contents must be unique in a run)"),
    ("SELECT min(row) FROM (SELECT row, min(row) OVER (PARTITION BY msg) AS first "
     "FROM msgs) WHERE row > first",
     "a second send with the same msg id"),
    ("SELECT min(h.rowid) FROM h ANTI JOIN msgs m ON h.msg = m.msg "
     "WHERE h.op IN ('attempt', 'ack', 'reject', 'give_up')",
     "refers to a msg that was never sent"),
)


def build(con: duckdb.DuckDBPyConnection, history: Path, store: Path) -> list[str]:
    """Create the derived tables; raises on a history that contradicts itself."""
    dup = con.execute(
        "SELECT min(rowid) FROM (SELECT rowid, count(*) OVER (PARTITION BY id) AS n "
        "FROM store) WHERE n > 1"
    ).fetchone()
    if dup and dup[0] is not None:
        raise RunDirError(store, physical_line(store, dup[0]), "a second row with the same id")
    statements = [s for s in TABLES.format(bad_row=BAD_ROW_SQL).split(";\n") if s.strip()]
    con.execute(statements[0])
    bad = con.execute("SELECT bad_row FROM facts").fetchone()
    if bad and bad[0] is not None:
        scan(history, line_problem)
        raise RunDirError(history, physical_line(history, bad[0]), "malformed line")
    for statement in statements[1:]:
        con.execute(statement)
    for query, message in CONSISTENCY:
        row = con.execute(query).fetchone()
        if row and row[0] is not None:
            raise RunDirError(history, physical_line(history, row[0]), message)
    warnings = []
    facts = con.execute("SELECT quiesced, run_starts FROM facts").fetchone()
    assert facts is not None
    if facts[1] == 0:
        warnings.append("history has no run_start: every store row counts as the run's")
    if facts[0] is None:
        warnings.append("history has no quiesce_end: convergence was not confirmed")
    return warnings
