"""The message store: SQLite through aiosqlite, WAL, group commit.

Three aiosqlite connections, three threads: the writer (one transaction per
batch), a reader (catch-up and counts; WAL lets it read while the writer
writes), and one for durable recovery sessions, so a slow session write never
sits inside a batch's transaction.

`synchronous=NORMAL` by default: in WAL mode a committed transaction is in the
WAL file before `COMMIT` returns, so it survives `kill -9` of the process; only
an OS crash or power loss can lose the last commits. `FULL` also fsyncs each
commit for that case, at a latency cost.

The fast insert path: without `FULL` a commit is a few small writes and no
fsync, so a batch is first tried on a fourth, plain `sqlite3` connection on the
event loop's own thread (as the Node peer's better-sqlite3 does) with a busy
timeout of zero: no thread hop, no wake-up of another thread. That connection is
in autocommit mode: the batch is a single INSERT, atomic on its own, so it needs
no BEGIN and COMMIT statements around it. When it cannot
commit at once (the file is locked by another process, an I/O error), the batch
goes to the writer thread, which waits up to the busy timeout and decides.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiosqlite

log = logging.getLogger("faultlab.server.store")

DUPLICATE = None
"""`insert_batch` result for an exactly-once retry whose client offset is already stored."""


class StoreError(RuntimeError):
    """The store refused a write (locked past the busy timeout, I/O error, closed)."""


class SchemaMismatch(RuntimeError):
    """An existing store file was created for a different delivery level."""


@dataclass(frozen=True)
class SavedSession:
    """A recovery session as kept in the store (durable recovery)."""

    pid: str
    sid: str
    rooms: list[str]
    data: dict[str, Any]
    start_cursor: int
    disconnected_at: float | None


def _schema(unique_offsets: bool) -> str:
    unique = " UNIQUE" if unique_offsets else ""
    return (
        "CREATE TABLE IF NOT EXISTS messages ("
        "id INTEGER PRIMARY KEY AUTOINCREMENT, "
        f"client_offset TEXT{unique}, "
        "content TEXT)"
    )


SESSIONS_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS faultlab_sessions ("
    "pid TEXT PRIMARY KEY, sid TEXT NOT NULL, rooms TEXT NOT NULL, data TEXT NOT NULL, "
    "start_cursor INTEGER NOT NULL, disconnected_at REAL)"
)


class Store:
    """The `messages` table of DESIGN §1, with an insert path built for group commit."""

    def __init__(
        self,
        path: str,
        *,
        unique_offsets: bool,
        busy_timeout_ms: int = 5000,
        synchronous: str = "NORMAL",
        sessions: bool = False,
    ) -> None:
        self.path = path
        self.unique_offsets = unique_offsets
        self.busy_timeout_ms = busy_timeout_ms
        self.synchronous = synchronous
        self.sessions_enabled = sessions
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._sessions: aiosqlite.Connection | None = None
        self._fast: sqlite3.Connection | None = None

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, timeout=self.busy_timeout_ms / 1000)
        await conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        await conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        return conn

    async def open(self) -> None:
        """Open the file (created if missing), switch to WAL, create or check the schema."""
        self._writer = await self._connect()
        await self._writer.execute("PRAGMA journal_mode = WAL")
        await self._writer.execute(_schema(self.unique_offsets))
        await self._writer.commit()
        await self._check_schema()
        self._reader = await self._connect()
        if self.synchronous not in ("FULL", "EXTRA"):
            # autocommit: the batch is one INSERT statement, so its own implicit
            # transaction commits it when stepped to the end (no BEGIN, no COMMIT)
            self._fast = sqlite3.connect(self.path, timeout=0, isolation_level=None)
            self._fast.execute("PRAGMA busy_timeout = 0")
            self._fast.execute(f"PRAGMA synchronous = {self.synchronous}")
        if self.sessions_enabled:
            self._sessions = await self._connect()
            await self._sessions.execute(SESSIONS_SCHEMA)
            await self._sessions.commit()

    async def _check_schema(self) -> None:
        assert self._writer is not None
        unique = False
        for row in await self._writer.execute_fetchall("PRAGMA index_list('messages')"):
            if not row[2]:
                continue
            cols = await self._writer.execute_fetchall(f"PRAGMA index_info('{row[1]}')")
            if [c[2] for c in cols] == ["client_offset"]:
                unique = True
        if unique != self.unique_offsets:
            want = "a UNIQUE client_offset" if self.unique_offsets else "a non-unique client_offset"
            has = "has" if unique else "has no"
            raise SchemaMismatch(
                f"store {self.path} {has} UNIQUE client_offset but this level needs {want}; "
                "use a fresh --db file"
            )

    async def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
            self._fast = None
        for conn in (self._writer, self._reader, self._sessions):
            if conn is not None:
                try:
                    await conn.close()
                except Exception:  # closing is best effort; the process is ending
                    log.exception("closing a store connection failed")
        self._writer = self._reader = self._sessions = None

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def insert_batch(self, items: Sequence[tuple[str, str | None]]) -> list[int | None]:
        """Insert `(content, client_offset)` rows in one transaction; ids in item order.

        With unique offsets a row whose client offset is already stored (before or
        earlier in this batch) is not inserted and gets `DUPLICATE`. Raises
        `StoreError` when nothing was committed.
        """
        if self._writer is None:
            raise StoreError("store is closed")
        sql, params = self._insert_statement(items)
        one = len(items) == 1
        if self._fast is not None:
            try:
                cursor = self._fast.execute(sql, params)
                return [self._one_id(cursor)] if one else self._ids(items, cursor.fetchall())
            except (sqlite3.Error, ValueError) as exc:
                # autocommit: a statement that fails leaves no transaction to roll back
                log.debug("fast insert did not commit (%s); the writer thread decides", exc)
        try:
            if one:
                async with self._writer.execute(sql, params) as cursor:
                    ids = [self._one_id(cursor)]
            else:
                ids = self._ids(items, list(await self._writer.execute_fetchall(sql, params)))
            await self._writer.commit()
        except (sqlite3.Error, ValueError) as exc:
            await self._rollback()
            raise StoreError(str(exc)) from exc
        return ids

    def _insert_statement(self, items: Sequence[tuple[str, str | None]]) -> tuple[str, list[Any]]:
        """The INSERT for `items`: one row without RETURNING, several rows with it.

        RETURNING makes SQLite collect the rows in an ephemeral table (a b-tree
        opened, a page zeroed and freed per statement), which costs more than the
        insert itself when there is one row; the row id and the change count say
        the same then.
        """
        params: list[Any] = []
        for content, client_offset in items:
            params.append(client_offset)
            params.append(content)
        values = ",".join("(?,?)" for _ in items)
        sql = f"INSERT INTO messages (client_offset, content) VALUES {values}"
        if self.unique_offsets:
            sql += " ON CONFLICT(client_offset) DO NOTHING"
        if len(items) > 1:
            sql += " RETURNING id, client_offset" if self.unique_offsets else " RETURNING id"
        return sql, params

    @staticmethod
    def _one_id(cursor: Any) -> int | None:
        """The row id of a one-row INSERT, or `DUPLICATE` when ON CONFLICT skipped it."""
        return int(cursor.lastrowid) if cursor.rowcount == 1 else DUPLICATE

    def _ids(self, items: Sequence[tuple[str, str | None]], rows: list[Any]) -> list[int | None]:
        """Row ids in item order (`DUPLICATE` for an offset already stored) from RETURNING rows."""
        if not self.unique_offsets:
            return sorted(row[0] for row in rows)
        by_offset = {offset: row_id for row_id, offset in rows}
        results: list[int | None] = []
        seen: set[str | None] = set()
        for _, client_offset in items:
            first = client_offset not in seen
            seen.add(client_offset)
            results.append(by_offset.get(client_offset) if first else DUPLICATE)
        return results

    async def _rollback(self) -> None:
        if self._writer is None:
            return
        try:
            await self._writer.rollback()
        except (sqlite3.Error, ValueError):
            log.exception("rollback failed")

    async def delete(self, row_id: int) -> None:
        """Remove one row (only the `drop_after_ack` mutation does this)."""
        if self._writer is None:
            raise StoreError("store is closed")
        try:
            await self._writer.execute("DELETE FROM messages WHERE id = ?", (row_id,))
            await self._writer.commit()
        except sqlite3.Error as exc:
            await self._rollback()
            raise StoreError(str(exc)) from exc

    async def rows_after(self, cursor: int, upto: int, limit: int) -> list[tuple[int, str]]:
        """Stored `(id, content)` with `cursor < id <= upto`, in id order, at most `limit`."""
        if self._reader is None:
            raise StoreError("store is closed")
        try:
            rows = await self._reader.execute_fetchall(
                "SELECT id, content FROM messages WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                (cursor, upto, limit),
            )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return [(row[0], row[1]) for row in rows]

    async def max_id(self) -> int:
        return await self._scalar("SELECT COALESCE(MAX(id), 0) FROM messages")

    async def count(self) -> int:
        return await self._scalar("SELECT COUNT(*) FROM messages")

    async def has_row(self, row_id: int) -> bool:
        return bool(await self._scalar("SELECT COUNT(*) FROM messages WHERE id = ?", (row_id,)))

    async def _scalar(self, sql: str, params: Sequence[Any] = ()) -> int:
        if self._reader is None:
            raise StoreError("store is closed")
        try:
            rows = await self._reader.execute_fetchall(sql, params)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        return int(rows[0][0])

    # Durable recovery sessions.

    async def save_session(self, session: SavedSession) -> None:
        await self._session_write(
            "INSERT INTO faultlab_sessions (pid, sid, rooms, data, start_cursor, disconnected_at) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT(pid) DO UPDATE SET sid=excluded.sid, "
            "rooms=excluded.rooms, data=excluded.data, start_cursor=excluded.start_cursor, "
            "disconnected_at=excluded.disconnected_at",
            (
                session.pid,
                session.sid,
                json.dumps(session.rooms),
                json.dumps(session.data),
                session.start_cursor,
                session.disconnected_at,
            ),
        )

    async def load_session(self, pid: str) -> SavedSession | None:
        if self._sessions is None:
            raise StoreError("store is closed")
        try:
            rows = await self._sessions.execute_fetchall(
                "SELECT pid, sid, rooms, data, start_cursor, disconnected_at "
                "FROM faultlab_sessions WHERE pid = ?",
                (pid,),
            )
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc
        if not rows:
            return None
        pid_, sid, rooms, data, start, at = rows[0]
        return SavedSession(pid_, sid, json.loads(rooms), json.loads(data), start, at)

    async def delete_session(self, pid: str) -> None:
        await self._session_write("DELETE FROM faultlab_sessions WHERE pid = ?", (pid,))

    async def expire_sessions(self, before: float) -> None:
        await self._session_write(
            "DELETE FROM faultlab_sessions "
            "WHERE disconnected_at IS NOT NULL AND disconnected_at < ?",
            (before,),
        )

    async def mark_orphans_disconnected(self, at: float) -> None:
        """Sessions left connected by a crash count as disconnected at `at` (restart time)."""
        await self._session_write(
            "UPDATE faultlab_sessions SET disconnected_at = ? WHERE disconnected_at IS NULL", (at,)
        )

    async def _session_write(self, sql: str, params: Sequence[Any]) -> None:
        if self._sessions is None:
            raise StoreError("store is closed")
        try:
            await self._sessions.execute(sql, params)
            await self._sessions.commit()
        except sqlite3.Error as exc:
            try:
                await self._sessions.rollback()
            except sqlite3.Error:
                log.exception("session rollback failed")
            raise StoreError(str(exc)) from exc
