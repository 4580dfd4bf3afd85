"""Precedence: every candidate of every invariant, then one kind per message.

A message is classified by its store outcome first, then by its deliveries
(DESIGN §3.4): it is listed under the first kind of `invariants.ALL` that names it,
with the clients that kind names.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb

from faultlab.harness.checker.invariants import ALL
from faultlab.harness.checker.model import on_cursor

# The costly delivery invariants (a window over every show; an anti join over every
# shown offset) run on a second cursor while this one runs the rest (`ordered`, which
# sender_reordered reads, is a variable of this cursor only).
SECOND = ("out_of_order", "never_delivered")


def _findings(cursor: duckdb.DuckDBPyConnection, table: str, ranks: list[int]) -> str | None:
    """Create `table` with every candidate of the given invariants (a gated one only if
    its gate says it can name something); None when there was nothing to run."""
    parts = [
        f"SELECT {rank} AS rank, key, client, how FROM ({ALL[rank].sql})  -- {ALL[rank].kind}"
        for rank in ranks
        if ALL[rank].gate is None or cursor.execute(ALL[rank].gate).fetchone() == (True,)
    ]
    if not parts:
        return None
    cursor.execute(f"CREATE TABLE {table} AS " + "\nUNION ALL\n".join(parts))
    return table


def classify(con: duckdb.DuckDBPyConnection, ordered: bool) -> None:
    """Create `cand` (every finding) and `verdict` (rank, key, msg, clients, how)."""
    con.execute(f"SET VARIABLE ordered = {'true' if ordered else 'false'}")
    second = [rank for rank, invariant in enumerate(ALL) if invariant.kind in SECOND]
    first = [rank for rank in range(len(ALL)) if rank not in second]
    with ThreadPoolExecutor(max_workers=1) as pool:
        costly = pool.submit(on_cursor, con.cursor(), _findings, "cand_costly", second)
        tables = [_findings(con, "cand_rest", first), costly.result()]
    # a view: its two tables are small, and each reader scans them once
    con.execute("CREATE VIEW cand AS " + " UNION ALL ".join(
        f"SELECT * FROM {table}" for table in tables if table is not None))
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
