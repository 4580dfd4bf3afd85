"""The Node peer (examples/node-peer) follows the chat contract, seen from a plain client.

The peer is faultlab's first outside target and the benchmark's yardstick, so its
contract is tested the way the harness uses it: started from its shipped target
file, driven by python-socketio, its SQLite file read directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import socketio

from faultlab.harness.processes import Child, Supervisor
from faultlab.harness.targets import load_target

pytestmark = pytest.mark.node

PEER_JS = Path(__file__).resolve().parents[2] / "examples" / "node-peer" / "server.js"
Connected = tuple[socketio.AsyncClient, list[tuple[Any, ...]]]
KNOBS = {"ping_interval": 5.0, "ping_timeout": 5.0, "recovery_window": 30.0, "busy_timeout": 0.2}


@contextlib.asynccontextmanager
async def peer(
    tmp: Path, delivery: str = "exactly-once", recovery: str = "off", **env: str
) -> AsyncIterator[Child]:
    target = load_target("node-peer")
    values = target.values(
        host="127.0.0.1",
        port=0,
        db=tmp / "peer.db",
        delivery=delivery,
        recovery=recovery,
        knobs=KNOBS,
    )
    async with Supervisor() as supervisor:
        yield await supervisor.spawn(
            "node-peer",
            target.argv(values),
            tmp / "peer.log",
            env={**target.environment(values), **env},
            ready_url=target.health,
        )


@contextlib.asynccontextmanager
async def chat_client(url: str, server_offset: Any = 0) -> AsyncIterator[Connected]:
    received: list[tuple[Any, ...]] = []
    client = socketio.AsyncClient(reconnection=False)

    @client.on("chat message")
    def on_message(*args: Any) -> None:
        received.append(args)

    await client.connect(
        url, auth={"serverOffset": server_offset}, transports=["websocket"], wait_timeout=5
    )
    try:
        yield client, received
    finally:
        await client.disconnect()


async def until(predicate: Any, timeout: float = 5.0) -> None:
    """Wait on a condition with a deadline (no bare sleeps)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def rows(db: Path) -> list[tuple[int, str | None, str]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        query = "SELECT id, client_offset, content FROM messages ORDER BY id"
        return conn.execute(query).fetchall()


async def health(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/healthz") as r:
        assert r.status == 200
        return await r.json()


async def test_ready_line_health_and_tutorial_defaults(tmp_path: Path) -> None:
    async with peer(tmp_path, recovery="memory") as child:
        assert child.url == f"http://127.0.0.1:{child.port}"
        body = await health(child.url)
        assert body == {
            "status": "ok",
            "level": "exactly-once",
            "recovery": "memory",
            "messages": 0,
            "pid": child.pid,
        }
    with contextlib.closing(sqlite3.connect(tmp_path / "peer.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


async def test_sqlite_pragmas_match_the_reference_server(tmp_path: Path) -> None:
    async with peer(tmp_path, SQLITE_PRAGMAS="journal_mode=WAL;synchronous=NORMAL"):
        pass
    with contextlib.closing(sqlite3.connect(tmp_path / "peer.db")) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_exactly_once_stores_a_retry_once_and_broadcasts_it_once(tmp_path: Path) -> None:
    async with peer(tmp_path) as child, chat_client(child.url) as (client, received):
        assert await client.call("chat message", ("hello", "c1-0"), timeout=5) is None
        assert await client.call("chat message", ("hello", "c1-0"), timeout=5) is None
        assert await client.call("chat message", ("world", "c1-1"), timeout=5) is None
        await until(lambda: len(received) >= 2)
        assert rows(tmp_path / "peer.db") == [(1, "c1-0", "hello"), (2, "c1-1", "world")]
        # the ack follows the broadcast, so both are here already: nothing more comes
        assert received == [("hello", 1), ("world", 2)]
        assert (await health(child.url))["messages"] == 2


async def test_at_least_once_stores_a_retry_again(tmp_path: Path) -> None:
    async with (
        peer(tmp_path, delivery="at-least-once") as child,
        chat_client(child.url) as (client, _),
    ):
        for _ in range(2):
            assert await client.call("chat message", ("again", "c-0"), timeout=5) is None
        assert rows(tmp_path / "peer.db") == [(1, "c-0", "again"), (2, "c-0", "again")]


async def test_weak_levels_accept_an_emit_without_ack_or_offset(tmp_path: Path) -> None:
    async with (
        peer(tmp_path, delivery="at-most-once") as child,
        chat_client(child.url) as (client, received),
    ):
        await client.emit("chat message", "fire and forget")
        await until(lambda: received == [("fire and forget", 1)])
        assert rows(tmp_path / "peer.db") == [(1, None, "fire and forget")]


BAD = [
    ((), "missing_content"),
    (("a", "b", "c"), "too_many_arguments"),
    ((42, "o-1"), "content_not_string"),
    ((None, "o-1"), "content_not_string"),
    ((["x"], "o-1"), "content_not_string"),
    (("", "o-1"), "content_empty"),
    (("x" * 101, "o-1"), "content_too_large"),
    (("é" * 51, "o-1"), "content_too_large"),  # 102 bytes: the limit counts UTF-8 bytes
    (("x",), "client_offset_missing"),
    (("x", None), "client_offset_missing"),
    (("x", 7), "client_offset_not_string"),
    (("x", {"a": 1}), "client_offset_not_string"),
    (("x", ""), "client_offset_empty"),
    (("x", "o" * 129), "client_offset_too_long"),
]


async def test_bad_input_is_rejected_precisely_and_stores_nothing(tmp_path: Path) -> None:
    async with (
        peer(tmp_path, MAX_CONTENT="100") as child,
        chat_client(child.url) as (client, received),
    ):
        for args, code in BAD:
            answer = await client.call("chat message", args, timeout=5)
            assert isinstance(answer, dict) and answer["error"] == code, (args, answer)
            assert answer["detail"], args
        # the limits are inclusive, and the process kept serving
        assert await client.call("chat message", ("x" * 100, "o" * 128), timeout=5) is None
        await until(lambda: len(received) == 1)
        assert rows(tmp_path / "peer.db") == [(1, "o" * 128, "x" * 100)]
    log = (tmp_path / "peer.log").read_text()
    assert "rejected" in log and "content_too_large" in log


async def test_catch_up_sends_every_row_after_the_server_offset(tmp_path: Path) -> None:
    async with peer(tmp_path) as child:
        async with chat_client(child.url) as (client, _):
            for i in range(5):
                assert await client.call("chat message", (f"m{i}", f"o{i}"), timeout=5) is None
        cases: list[tuple[Any, list[int]]] = [
            (0, [1, 2, 3, 4, 5]),
            (3, [4, 5]),
            (5, []),
            (99, [1, 2, 3, 4, 5]),  # above the highest id: a reset store, send everything
            (-1, [1, 2, 3, 4, 5]),
            (2.5, [1, 2, 3, 4, 5]),
            ("3", [1, 2, 3, 4, 5]),
        ]
        for offset, ids in cases:
            sentinel = f"s{offset}"
            async with chat_client(child.url, offset) as (client, received):
                # a sentinel sent after the catch-up proves nothing else was queued
                assert await client.call("chat message", (sentinel, sentinel), timeout=5) is None
                await until(lambda r=received, s=sentinel: any(a[0] == s for a in r))
                got = [a[1] for a in received if not str(a[0]).startswith("s")]
                assert got == ids, offset


async def test_a_failed_insert_is_not_acked_and_the_retry_is_stored_once(tmp_path: Path) -> None:
    async with peer(tmp_path) as child, chat_client(child.url) as (client, received):
        assert await client.call("chat message", ("first", "o-1"), timeout=5) is None
        lock = sqlite3.connect(tmp_path / "peer.db", isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            with pytest.raises(socketio.exceptions.TimeoutError):
                await client.call("chat message", ("locked", "o-2"), timeout=1)
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        assert await client.call("chat message", ("locked", "o-2"), timeout=5) is None
        await until(lambda: len(received) == 2)
        assert received == [("first", 1), ("locked", 2)]
        assert rows(tmp_path / "peer.db") == [(1, "o-1", "first"), (2, "o-2", "locked")]
        assert (await health(child.url))["messages"] == 2
    assert 'insert failed, not acked (client offset "o-2")' in (tmp_path / "peer.log").read_text()


async def test_sigterm_is_graceful(tmp_path: Path) -> None:
    async with peer(tmp_path) as child, chat_client(child.url) as (client, _):
        assert await client.call("chat message", ("kept", "o-1"), timeout=5) is None
        child.send_signal(signal.SIGTERM)
        assert await child.wait_exit(10) == 0
    assert rows(tmp_path / "peer.db") == [(1, "o-1", "kept")]


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"DELIVERY": "twice"}, "DELIVERY must be one of"),
        ({"RECOVERY": "durable"}, "RECOVERY must be one of off|memory"),
        ({"PORT": "http"}, "PORT must be an integer"),
        ({"PORT": "70000"}, "PORT must be at most 65535"),
        ({"PING_INTERVAL_MS": "0"}, "PING_INTERVAL_MS must be an integer >= 1"),
        ({"SQLITE_PRAGMAS": "journal_mode"}, "SQLITE_PRAGMAS: cannot read"),
    ],
)
def test_bad_settings_exit_2_with_one_line(
    tmp_path: Path, env: dict[str, str], reason: str
) -> None:
    node = shutil.which("node")
    assert node
    done = subprocess.run(
        [node, str(PEER_JS)],
        env={"DB": str(tmp_path / "x.db"), **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and reason in done.stderr, done.stderr
    assert done.stdout == ""


def test_a_store_made_for_another_level_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "client_offset TEXT, content TEXT)"
        )
    node = shutil.which("node")
    assert node
    done = subprocess.run(
        [node, str(PEER_JS)],
        env={"DB": str(db)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "lacks a UNIQUE client_offset" in done.stderr
