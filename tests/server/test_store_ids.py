"""Row ids from `Store.insert_batch` (one row: no RETURNING; several: RETURNING), real file.

Both insert paths: the loop-thread connection, and the writer thread that takes
over when another connection holds the write lock.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from faultlab.server.store import DUPLICATE, Store


def stored(db: Path) -> list[tuple[int, str | None, str]]:
    with sqlite3.connect(db) as conn:
        query = "SELECT id, client_offset, content FROM messages ORDER BY id"
        return conn.execute(query).fetchall()


@pytest.mark.parametrize("unique", [True, False])
async def test_ids_come_back_in_item_order(tmp_path: Path, unique: bool) -> None:
    db = tmp_path / "chat.db"
    store = Store(str(db), unique_offsets=unique)
    await store.open()
    try:
        first = await store.insert_batch([("a", "o1")])
        again = await store.insert_batch([("a", "o1")])
        batch = await store.insert_batch([("b", "o2"), ("c", "o1"), ("d", "o2")])
    finally:
        await store.close()
    rows = stored(db)
    if unique:
        assert first == [1] and again == [DUPLICATE]
        assert batch[1:] == [DUPLICATE, DUPLICATE] and batch[0] is not None
        assert [(r[1], r[2]) for r in rows] == [("o1", "a"), ("o2", "b")]
        assert [r[0] for r in rows] == [1, batch[0]]
    else:
        assert first == [1] and again == [2] and batch == [3, 4, 5]
        assert [(r[0], r[1], r[2]) for r in rows] == [
            (1, "o1", "a"),
            (2, "o1", "a"),
            (3, "o2", "b"),
            (4, "o1", "c"),
            (5, "o2", "d"),
        ]


@pytest.mark.parametrize("items", [[("x", "o1")], [("x", "o1"), ("y", "o2")]])
async def test_a_locked_store_inserts_through_the_writer_thread(
    tmp_path: Path, items: list[tuple[str, str]]
) -> None:
    db = tmp_path / "chat.db"
    store = Store(str(db), unique_offsets=True, busy_timeout_ms=10_000)
    await store.open()
    holder = sqlite3.connect(db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        insert = asyncio.create_task(store.insert_batch(items))
        await asyncio.sleep(0)  # the loop-thread attempt fails at once; the writer waits
        assert not insert.done()
        holder.execute("COMMIT")
        ids = await asyncio.wait_for(insert, 10)
        assert await store.insert_batch(items[:1]) == [DUPLICATE]
    finally:
        holder.close()
        await store.close()
    assert ids == list(range(1, len(items) + 1))
    assert [(r[1], r[2]) for r in stored(db)] == [(o, c) for c, o in items]
