"""Precedence: every candidate of every invariant, then one kind per message.

A message is classified by its store outcome first, then by its deliveries
(DESIGN §3.4): it is listed under the first kind of `invariants.ALL` that names it,
with the clients that kind names.
"""

from __future__ import annotations

import duckdb

from faultlab.harness.checker.invariants import ALL


def classify(con: duckdb.DuckDBPyConnection, ordered: bool) -> None:
    """Create `cand` (every finding) and `verdict` (rank, key, msg, clients, how)."""
    con.execute(f"SET VARIABLE ordered = {'true' if ordered else 'false'}")
    findings = "\nUNION ALL\n".join(
        f"SELECT {rank} AS rank, key, client, how FROM ({invariant.sql})  -- {invariant.kind}"
        for rank, invariant in enumerate(ALL)
        if invariant.gate is None or con.execute(invariant.gate).fetchone() == (True,)
    )
    con.execute(f"CREATE TABLE cand AS {findings}")
    con.execute(
        """
        CREATE TABLE verdict AS
        WITH best AS (SELECT key, min(rank) AS rank FROM cand GROUP BY key)
        SELECT b.rank, b.key, m.msg, m.row AS send_row,
               list(DISTINCT c.client ORDER BY c.client)
                 FILTER (WHERE c.client IS NOT NULL) AS clients,
               min(c.how) AS how
        FROM best b JOIN cand c USING (key, rank) LEFT JOIN msgs m ON m.content = b.key
        GROUP BY b.rank, b.key, m.msg, m.row
        """
    )
