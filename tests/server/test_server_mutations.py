"""Each mutation plants the bug it claims: the violation is visible on the wire or in the store."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import socketio
from chat_client import ChatClient, rows

from faultlab.server.mutations import MUTATIONS

Scenario = Callable[[str, Path], Awaitable[None]]
SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Scenario], Scenario]:
    def register(fn: Scenario) -> Scenario:
        SCENARIOS[name] = fn
        return fn

    return register


@contextmanager
def store_locked(db: Path):
    """Another process holds the write lock (the busy timeout in the tests is 300 ms)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


async def clients(url: str, n: int) -> list[ChatClient]:
    made = [ChatClient(url) for _ in range(n)]
    for c in made:
        await c.connect()
    return made


async def wait_rows(db: Path, predicate: Callable[[list[Any]], bool], timeout: float = 5) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not predicate(rows(db)):
        assert asyncio.get_running_loop().time() < end, rows(db)
        await asyncio.sleep(0.02)


@scenario("ack_before_commit")
async def _ack_before_commit(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    with store_locked(db):
        assert await c.send("m", "c-1", timeout=0.25) is None  # acked while the store is locked
        await asyncio.sleep(0.5)  # past the busy timeout: the insert failed
    assert rows(db) == []  # lost_acked


@scenario("drop_after_ack")
async def _drop_after_ack(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("m", "c-1") is None
    await wait_rows(db, lambda r: r == [])


@scenario("drop_silently")
async def _drop_silently(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    for _ in range(2):  # first try and a retry: both dropped
        with pytest.raises(socketio.exceptions.TimeoutError):
            await c.send("m", "c-1", timeout=0.3)
    assert await c.send("n", "c-2") is None
    assert [r[2] for r in rows(db)] == ["n"]


@scenario("no_dedupe")
async def _no_dedupe(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("m", "c-1") is None
    assert await c.send("m", "c-1") is None
    assert [(r[1], r[2]) for r in rows(db)] == [("c-1", "m"), ("c-1", "m")]


@scenario("double_insert")
async def _double_insert(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("m", "c-1") is None
    assert [r[2] for r in rows(db)] == ["m", "m"]


@scenario("commit_out_of_order")
async def _commit_out_of_order(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("first", "c-1") is None
    assert await c.send("second", "c-2") is None
    await wait_rows(db, lambda r: [x[2] for x in r] == ["second", "first"])


@scenario("phantom_row")
async def _phantom_row(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("m", "c-1") is None
    stored = rows(db)
    assert [r[2] for r in stored] == ["m", stored[1][2]] and stored[1][2].startswith("phantom-")
    await c.wait_count(2)
    assert c.received == [("m", 1), (stored[1][2], 2)]


@scenario("corrupt_one_client")
async def _corrupt_one_client(url: str, db: Path) -> None:
    a, b = await clients(url, 2)
    assert await a.send("m", "c-1") is None
    await a.wait_count(1)
    await b.wait_count(1)
    assert sorted([a.received[0], b.received[0]]) == [("m", 1), ("m (corrupted)", 1)]


@scenario("broadcast_before_commit")
async def _broadcast_before_commit(url: str, db: Path) -> None:
    sender, watcher = await clients(url, 2)
    with store_locked(db), pytest.raises(socketio.exceptions.TimeoutError):
        await sender.send("first", "c-1", timeout=0.6)
    assert await sender.send("second", "c-2") is None
    await watcher.wait_count(2)
    assert watcher.received[:2] == [("first", 1), ("second", 1)]
    assert rows(db) == [(1, "c-2", "second")]  # offset 1 was shown with other content


@scenario("double_broadcast")
async def _double_broadcast(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("m", "c-1") is None
    await c.wait_count(2)
    assert c.received == [("m", 1), ("m", 1)]


@scenario("sync_from_ge")
async def _sync_from_ge(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    for i in range(3):
        assert await c.send(f"m{i}", f"c-{i}") is None
    late = ChatClient(url)
    late.server_offset = 2
    await late.connect()
    await late.wait_count(2)
    assert late.received == [("m1", 2), ("m2", 3)]


@scenario("swap_broadcasts")
async def _swap_broadcasts(url: str, db: Path) -> None:
    sender, watcher = await clients(url, 2)
    assert await sender.send("first", "c-1") is None
    assert await sender.send("second", "c-2") is None
    await watcher.wait_count(2)
    assert watcher.received == [("second", 2), ("first", 1)]


@scenario("no_sync")
async def _no_sync(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("old", "c-1") is None
    late = ChatClient(url)
    await late.connect()
    assert await c.send("new", "c-2") is None
    await late.wait_count(1)
    assert late.received == [("new", 2)]


@scenario("truncated_sync")
async def _truncated_sync(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    for i in range(3):
        assert await c.send(f"m{i}", f"c-{i}") is None
    late = ChatClient(url)
    await late.connect()
    # the catch-up's one row arrives before the socket goes live; "new" must be a
    # live broadcast, not one that lands while the catch-up still reads the store
    await late.wait_count(1)
    assert await c.send("new", "c-9") is None
    await late.wait_count(2)
    assert late.received == [("m0", 1), ("new", 4)]


@scenario("skip_broadcast")
async def _skip_broadcast(url: str, db: Path) -> None:
    (c,) = await clients(url, 1)
    assert await c.send("skipped", "c-1") is None
    assert await c.send("shown", "c-2") is None
    await c.wait_count(1)
    assert c.received == [("shown", 2)]
    assert [r[2] for r in rows(db)] == ["skipped", "shown"]


def test_every_mutation_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(MUTATIONS)
    kinds = {p.kind for p in MUTATIONS.values()}
    assert kinds == {
        "lost_acked",
        "lost",
        "duplicated_stored",
        "sender_reordered",
        "phantom",
        "corrupted",
        "duplicated_delivered",
        "out_of_order",
        "never_delivered",
    }


@pytest.mark.parametrize("name", sorted(MUTATIONS))
async def test_mutation_plants_its_bug(start_server, db, name):
    server = await start_server("--mutation", name, "--allow-mutations")
    await SCENARIOS[name](server.url, db)


def _run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faultlab", "server", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def test_mutations_are_refused_unless_allowed(tmp_path: Path) -> None:
    done = _run_cli("--db", str(tmp_path / "x.db"), "--mutation", "no_sync")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--allow-mutations" in done.stderr
    done = _run_cli("--db", str(tmp_path / "x.db"), "--mutation", "nope", "--allow-mutations")
    assert done.returncode == 2 and "unknown mutation 'nope'" in done.stderr
    listed = _run_cli("--list-mutations")
    assert listed.returncode == 0
    assert [line.split()[0] for line in listed.stdout.splitlines()] == list(MUTATIONS)
