"""The store from the harness's side: a read-only snapshot and a real write lock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import orjson
import psutil
import pytest

from faultlab.harness.processes import ChildFailed, Supervisor
from faultlab.harness.store import StoreLock, max_id, read_rows, snapshot
from faultlab.harness.targets import load_target

SPEC = load_target().store


def make_store(path: Path, rows: list[tuple[str | None, str]], *, wal: bool = True) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
                 "client_offset TEXT UNIQUE, content TEXT)")
    conn.executemany("INSERT INTO messages (client_offset, content) VALUES (?, ?)", rows)
    conn.commit()
    conn.close()


async def test_snapshot_reads_committed_rows_in_id_order(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_store(db, [("o1", "a"), (None, "b")])
    writer = sqlite3.connect(db)  # an open writer: the rows sit in the WAL, not the file
    writer.execute("INSERT INTO messages (client_offset, content) VALUES ('o3', 'c')")
    writer.commit()
    writer.execute("BEGIN")
    writer.execute("INSERT INTO messages (client_offset, content) VALUES ('o4', 'uncommitted')")
    rows = await snapshot(SPEC, db, tmp_path / "store.jsonl")
    writer.rollback()
    writer.close()
    assert rows == [{"id": 1, "client_offset": "o1", "content": "a"},
                    {"id": 2, "client_offset": None, "content": "b"},
                    {"id": 3, "client_offset": "o3", "content": "c"}]
    lines = (tmp_path / "store.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == rows
    assert max_id(SPEC, db) == 3


def test_missing_store_or_table_is_empty(tmp_path: Path) -> None:
    assert read_rows(SPEC, tmp_path / "none.db") == []
    sqlite3.connect(tmp_path / "empty.db").close()
    assert max_id(SPEC, tmp_path / "empty.db") == 0


@pytest.mark.parametrize("mode", ["immediate", "exclusive"])
async def test_write_lock_is_held_by_another_process_until_killed(tmp_path: Path,
                                                                  mode: str) -> None:
    db = tmp_path / "s.db"
    make_store(db, [(None, "a")], wal=False)
    async with Supervisor() as sup:
        lock = await StoreLock.prepare(sup, db, tmp_path / "lock.log", mode=mode)
        conn = sqlite3.connect(db, timeout=0.05)
        conn.execute("INSERT INTO messages (content) VALUES ('before')")  # armed, not held
        conn.commit()
        await lock.acquire()
        child = lock.child
        assert child.pid != psutil.Process().pid
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            conn.execute("INSERT INTO messages (content) VALUES ('blocked')")
        await lock.release()
        conn.execute("INSERT INTO messages (content) VALUES ('free')")
        conn.commit()
        conn.close()
        pid = child.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert [r["content"] for r in read_rows(SPEC, db)] == ["a", "before", "free"]


async def test_write_lock_that_cannot_be_taken_says_so(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    make_store(db, [], wal=False)
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        async with Supervisor() as sup:
            with pytest.raises(ChildFailed) as info:
                lock = await StoreLock.prepare(sup, db, tmp_path / "lock.log", deadline=0.2)
                await lock.acquire()
    finally:
        holder.rollback()
        holder.close()
    assert "store-lock exited before it held the lock" in str(info.value)
    assert "database is locked" in str(info.value)
