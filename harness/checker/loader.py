"""Loads history.jsonl and store.jsonl into DuckDB tables, or says precisely why not.

The fast path is DuckDB's newline-delimited JSON reader with a fixed schema (no type
sniffing, only the columns the invariants read). Errors are rare, so they are
explained by a slower exact pass: Python re-reads the file and names the first bad
line. A truncated last line (a harness that crashed mid-write) is tolerated and
reported as a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson

from faultlab.harness.checker.errors import RunDirError
from faultlab.harness.checker.schema import (
    HISTORY_COLUMNS,
    STORE_COLUMNS,
    line_problem,
    row_problem,
)

Problem = Callable[[Any], str | None]


def _columns_sql(columns: dict[str, str]) -> str:
    return "{" + ", ".join(f"'{name}': '{kind}'" for name, kind in columns.items()) + "}"


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def truncated_tail(path: Path) -> bytes | None:
    """The unparsable text after the last newline, or None when the file ends cleanly."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        if size == 0:
            return None
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return None
        chunk, pos = b"", size
        while pos > 0 and b"\n" not in chunk:
            step = min(65536, pos)
            pos -= step
            f.seek(pos)
            chunk = f.read(step) + chunk
        tail = chunk.rsplit(b"\n", 1)[-1]
    if not tail.strip():
        return None
    try:
        orjson.loads(tail)
    except orjson.JSONDecodeError:
        return tail
    return None


def numbered_lines(path: Path, skip_tail: bool = False) -> Iterator[tuple[int, int, bytes]]:
    """(row index among non-blank lines, physical line number, text), as DuckDB counts rows."""
    index = 0
    with open(path, "rb") as f:
        pending: tuple[int, bytes] | None = None
        for number, raw in enumerate(f, start=1):
            if pending is not None and pending[1].strip():
                yield index, pending[0], pending[1]
                index += 1
            pending = (number, raw)
        if pending is not None and pending[1].strip() and not skip_tail:
            yield index, pending[0], pending[1]


def scan(path: Path, problem: Problem, skip_tail: bool = False) -> int:
    """Exact validation of every line; raises on the first bad one, returns the row count."""
    count = 0
    for _, number, raw in numbered_lines(path, skip_tail):
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise RunDirError(path, number, f"not valid JSON ({exc})") from None
        if (why := problem(value)) is not None:
            raise RunDirError(path, number, why)
        count += 1
    return count


def physical_line(path: Path, row: int) -> int:
    """The file line number of DuckDB row `row` (blank lines are not rows)."""
    for index, number, _ in numbered_lines(path):
        if index == row:
            return number
    return row + 1


def _load(con: duckdb.DuckDBPyConnection, table: str, path: Path, columns: dict[str, str],
          problem: Problem, bad_row_sql: str | None) -> list[str]:
    warnings: list[str] = []
    if not path.exists():
        raise RunDirError(path, None, "missing")
    tail = truncated_tail(path)
    reader = (
        f"read_json('{_sql_path(path)}', format='newline_delimited', "
        f"columns={_columns_sql(columns)}, ignore_errors={'true' if tail else 'false'})"
    )
    try:
        con.execute(f"CREATE OR REPLACE TABLE {table} AS SELECT * FROM {reader}")
    except (duckdb.Error, UnicodeDecodeError) as exc:
        # UnicodeDecodeError: DuckDB's message quoted the bad line cut mid-character, and
        # the binding could not decode it; the exact scan names the line either way
        scan(path, problem)
        raise RunDirError(path, None, f"unreadable: {exc}") from None
    if tail is not None:
        good = scan(path, problem, skip_tail=True)
        con.execute(f"DELETE FROM {table} WHERE rowid >= {good}")
        warnings.append(
            f"{path.name}: last line truncated ({len(tail)} bytes) and ignored, "
            f"after {good} complete lines"
        )
    elif bad_row_sql:
        bad = con.execute(f"SELECT min(rowid) FROM {table} WHERE {bad_row_sql}").fetchone()
        if bad and bad[0] is not None:
            scan(path, problem)
            raise RunDirError(path, physical_line(path, bad[0]), "malformed line")
    return warnings


def load_history(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Table `h` (rowid = index of the line among non-blank lines); returns warnings.

    Missing required fields are detected later, in the same pass as the run's facts."""
    return _load(con, "h", path, HISTORY_COLUMNS, line_problem, None)


def load_store(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    """Table `store` (id, client_offset, content) with unique ids; returns warnings."""
    warnings = _load(con, "store", path, STORE_COLUMNS, row_problem,
                     "id IS NULL OR content IS NULL")
    # counting distinct ids is cheaper than the window that names the line
    if con.execute("SELECT count(DISTINCT id) < count(*) FROM store").fetchone() != (True,):
        return warnings
    dup = con.execute(
        "SELECT rowid, id, first FROM (SELECT rowid, id, min(rowid) OVER (PARTITION BY id) "
        "AS first FROM store) WHERE rowid > first ORDER BY rowid LIMIT 1"
    ).fetchone()
    if dup is not None:
        row, id_, first = dup
        raise RunDirError(path, physical_line(path, row),
                          f"a second row with id {id_} (the first is line "
                          f"{physical_line(path, first)})")
    return warnings


def read_rows(path: Path, rows: set[int]) -> dict[int, dict[str, Any]]:
    """The original lines at the given row indexes, each with its physical `line`."""
    found: dict[int, dict[str, Any]] = {}
    if not rows:
        return found
    last = max(rows)
    for index, number, raw in numbered_lines(path):
        if index in rows:
            found[index] = {"line": number, **orjson.loads(raw)}
        if index >= last:
            break
    return found
