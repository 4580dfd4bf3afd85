"""The metrics of the verdict (DESIGN §3.4, and docs/checker.md for each definition).

Latencies are summarised as p50/p95/p99/max (nearest-rank, so every figure is a real
observation and the output is deterministic), rounded to the microsecond the
history records.
"""

from __future__ import annotations

from typing import Any

import duckdb
import orjson

# Distinct counts from the small per-message and per-actor tables, not the history.
PER_MESSAGE = """
SELECT count(*) FILTER (WHERE acked) AS acks, count(*) FILTER (WHERE rejected) AS rejects,
       count(*) FILTER (WHERE given_up) AS give_ups FROM fate
"""
PER_ACTOR = """
SELECT count(*) FILTER (WHERE connects) AS connecting,
       count(*) FILTER (WHERE left_run) AS left_clients
FROM actors
"""

# Per offset: when anyone first received it, and when the last converging client first
# showed it, in any of its sessions. An actor's sessions rarely show the same offset
# (a refresh resumes above what was shown), so the per-actor minimum over sessions is
# taken only where two of its sessions' shown offset ranges overlap (`shared`); every
# other seen row is already its actor's only show of that offset. Exact, and it spares
# a hash aggregation of every seen row.
FIRSTS = """
CREATE TABLE firsts AS
WITH span AS (
  SELECT sid, min(off) AS lo, max(off) AS hi FROM seen WHERE first_show IS NOT NULL
  GROUP BY sid),
shared AS (
  SELECT a.sid, greatest(a.lo, b.lo) AS lo, least(a.hi, b.hi) AS hi
  FROM span a JOIN span b ON a.sid >> 32 = b.sid >> 32 AND a.sid <> b.sid
  WHERE a.lo <= b.hi AND b.lo <= a.hi),
per AS (
  SELECT sid >> 32 AS aid, off, first_show AS show_t, first_t
  FROM seen s ANTI JOIN shared x ON s.sid = x.sid AND s.off BETWEEN x.lo AND x.hi
  UNION ALL
  SELECT sid >> 32, off, min(first_show), min(first_t)
  FROM seen s SEMI JOIN shared x ON s.sid = x.sid AND s.off BETWEEN x.lo AND x.hi
  GROUP BY 1, 2)
SELECT off, min(first_t) AS first_t,
       max(show_t) FILTER (WHERE aid IN (SELECT aid FROM clients WHERE NOT left_run)) AS t
FROM per GROUP BY off
"""

# Per run row: when the last converging client first showed it (NULL if one never did,
# or if never_delivered names it: `missing`), and when anyone first received it.
STABLE = """
CREATE OR REPLACE TABLE stable AS
WITH missing AS ({missing})
SELECT r.id, r.content,
       CASE WHEN r.content IN (SELECT key FROM missing) THEN NULL ELSE f.t END AS t,
       r.content IN (SELECT key FROM missing) AS missing, f.first_t
FROM run_rows r LEFT JOIN firsts f ON f.off = r.id
"""
NONE_MISSING = "SELECT NULL::VARCHAR AS key WHERE false"

STABLE_LATENCY = """
SELECT s.t - m.send_t FROM messages m JOIN stable s ON s.id = m.first_id
WHERE s.t IS NOT NULL
"""

ACK_LATENCY = "SELECT ack_t - send_t FROM messages WHERE ack_t IS NOT NULL"

# Per fault_end: rows known stored by then (acked, or received by someone), and the
# moment every converging client had shown all of them.
RECOVERY = """
WITH evidence AS (
  SELECT s.id, least(m.ack_t, s.first_t) AS e, s.t AS st, s.missing
  FROM stable s
  LEFT JOIN messages m ON m.content = s.content),
prefix AS (
  SELECT e, max(st) OVER w AS worst, bool_or(missing) OVER w AS miss FROM evidence
  WHERE e IS NOT NULL WINDOW w AS (ORDER BY e, id ROWS UNBOUNDED PRECEDING)),
upto AS (SELECT e, max(worst) AS worst, bool_or(miss) AS miss FROM prefix GROUP BY e),
ends AS (SELECT fault, kind, end_t, end_row FROM faults WHERE end_t IS NOT NULL)
SELECT ends.fault, ends.kind,
       CASE WHEN upto.miss THEN NULL
            ELSE greatest(0, coalesce(upto.worst, ends.end_t) - ends.end_t) END
FROM ends ASOF LEFT JOIN upto ON ends.end_t >= upto.e
ORDER BY ends.end_row
"""

REDELIVERED = "SELECT count(*) FROM seen WHERE recvs > 1 AND shows = 1"


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def _summary_sql(query: str) -> str:
    return f"SELECT quantile_disc(x, [0.5, 0.95, 0.99]), max(x) FROM ({query}) AS v(x)"


def _summary(row: tuple[Any, ...] | None) -> dict[str, float | None]:
    quantiles, top = (row or (None, None))
    p50, p95, p99 = quantiles if quantiles else (None, None, None)
    return {"p50": _r(p50), "p95": _r(p95), "p99": _r(p99), "max": _r(top)}


def summary(con: duckdb.DuckDBPyConnection, query: str) -> dict[str, float | None]:
    """p50/p95/p99/max of one column of values (all None when there are none)."""
    return _summary(con.execute(_summary_sql(query)).fetchone())


def counts(cursor: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """The metrics that do not depend on the classification (the run's counts, the
    redeliveries, the ack latency), the tables `firsts` and `stable`, and the stable
    figures if nothing is never delivered: `judge` runs this on a second cursor while
    the invariants run."""
    cursor.execute(FIRSTS)
    row = cursor.execute(
        f"SELECT * FROM facts, ({PER_MESSAGE}), ({PER_ACTOR}), "
        "(SELECT count(*) AS clients FROM clients), "
        f"({REDELIVERED}) AS r(redelivered), ({_summary_sql(ACK_LATENCY)}) AS a(ack_q, ack_max)"
    )
    names = [d[0] for d in row.description]
    found = dict(zip(names, row.fetchone() or (), strict=True))
    found["ack_latency"] = _summary((found.pop("ack_q"), found.pop("ack_max")))
    found["stable"] = _stable(cursor, NONE_MISSING)
    return found


def _stable(con: duckdb.DuckDBPyConnection, missing: str
            ) -> tuple[list[dict[str, Any]], dict[str, float | None]]:
    """Table `stable` given the never-delivered keys; (recovery times, stable latency)."""
    con.execute(STABLE.format(missing=missing))
    recovery = [
        {"fault": orjson.loads(fault), "kind": kind, "seconds": _r(seconds)}
        for fault, kind, seconds in con.execute(RECOVERY).fetchall()
    ]
    return recovery, summary(con, STABLE_LATENCY)


def metrics(con: duckdb.DuckDBPyConnection, never_rank: int,
            base: dict[str, Any]) -> dict[str, Any]:
    """Every metric of the verdict; needs the model's tables, `cand` (for never_delivered)
    and what `counts` found."""
    reconnects = base["connects"] - base["connecting"]
    duration = _r(base["duration"])
    # `counts` computed the stable figures as if nothing was never delivered (nearly
    # always so), beside the invariants; redone here only when that was not so.
    recovery, stable_latency = base["stable"]
    never = f"SELECT DISTINCT key FROM cand WHERE rank = {int(never_rank)}"
    if con.execute(f"SELECT count(*) > 0 FROM ({never})").fetchone() == (True,):
        recovery, stable_latency = _stable(con, never)
    return {
        "sends": base["sends"],
        "attempts": base["attempts"],
        "retries": base["retries"],
        "acks": base["acks"],
        "rejects": base["rejects"],
        "give_ups": base["give_ups"],
        "reconnects": reconnects,
        "recovered": base["recovered"],
        "recovered_ratio": _r(base["recovered"] / reconnects) if reconnects else None,
        "redelivered": base["redelivered"],
        "recvs": base["recvs"],
        "shows": base["shows"],
        "show_rate": _r(base["shows"] / duration) if duration else None,
        "sessions": base["sessions"],
        "clients": base["clients"],
        "left": base["left_clients"],
        "faults": base["faults"],
        "duration": duration,
        "converged": bool(base["quiesced"]),
        "ack_latency": base["ack_latency"],
        "stable_latency": stable_latency,
        "recovery_time": recovery,
    }
