"""Failpoints: armed at start or at run time, each doing what its name says."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
import socketio
from chat_client import ChatClient, rows

from faultlab.server.app import _loopback
from faultlab.server.failpoints import CRASH_EXIT_CODE, BadFailpoint, Failpoints


async def _admin(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        if body is None:
            async with http.get(f"{url}/admin/failpoints") as r:
                return r.status, await r.json()
        async with http.post(f"{url}/admin/failpoints", json=body) as r:
            return r.status, await r.json()


async def test_before_insert_error_is_not_acked_and_stores_nothing(start_server, db):
    server = await start_server(env={"FAULTLAB_FAILPOINTS": "before_insert=error*1"})
    client = ChatClient(server.url)
    await client.connect()
    with pytest.raises(socketio.exceptions.TimeoutError):
        await client.send("m", "c-1", timeout=0.5)
    assert rows(db) == []
    assert await client.send("m", "c-1") is None
    await client.wait_count(1)
    assert rows(db) == [(1, "c-1", "m")]
    status, state = await _admin(server.url)
    assert status == 200 and state["armed"] == {}
    assert [(f["name"], f["action"]) for f in state["fired"]] == [("before_insert", "error")]
    assert abs(state["fired"][0]["at"] - time.time()) < 30
    await client.leave()


@pytest.mark.parametrize("arm", [{"action": "error"}, {"action": "delay", "ms": 800}])
async def test_after_commit_failure_then_retry_broadcasts_the_row_once(start_server, db, arm):
    server = await start_server()
    sender, watcher = ChatClient(server.url), ChatClient(server.url)
    await sender.connect()
    await watcher.connect()
    status, state = await _admin(server.url, {"name": "after_commit", "count": 1, **arm})
    assert status == 200
    assert state["armed"]["after_commit"]["remaining"] == 1
    with pytest.raises(socketio.exceptions.TimeoutError):
        await sender.send("m", "c-1", timeout=0.4)
    assert await sender.send("m", "c-1", timeout=3) is None  # the retry: a duplicate, acked
    assert await sender.send("next", "c-2") is None
    await watcher.wait_count(2)
    await asyncio.sleep(0.2)
    stored = rows(db)
    assert [(r[1], r[2]) for r in stored] == [("c-1", "m"), ("c-2", "next")]
    assert watcher.received == [("m", stored[0][0]), ("next", stored[1][0])]
    await sender.leave()
    await watcher.leave()


async def test_before_broadcast_error_retries_until_the_row_goes_out(start_server, db):
    server = await start_server("--failpoints", "before_broadcast=error*3")
    client = ChatClient(server.url)
    await client.connect()
    assert await client.send("m", "c-1") is None
    assert client.received == [("m", 1)]
    _, state = await _admin(server.url)
    assert [f["name"] for f in state["fired"]] == ["before_broadcast"] * 3
    await client.leave()


async def test_after_commit_crash_exits_abruptly_with_the_row_committed(start_server, db):
    server = await start_server("--failpoints", "after_commit=crash")
    client = ChatClient(server.url)
    await client.connect()
    with pytest.raises(socketio.exceptions.TimeoutError):
        await client.send("m", "c-1", timeout=1)
    assert await server.wait_exit(5) == CRASH_EXIT_CODE
    assert rows(db) == [(1, "c-1", "m")]
    await client.drop()


async def test_during_sync_error_closes_the_transport_and_the_next_catch_up_works(start_server, db):
    server = await start_server("--failpoints", "during_sync=error*1")
    writer = ChatClient(server.url)
    await writer.connect()  # this connection's sync takes the one error
    await writer.wait_for(lambda: writer.sio is not None and writer.sio.eio.state != "connected")
    await writer.drop()
    await writer.connect()
    assert await writer.send("m", "c-1") is None
    reader = ChatClient(server.url)
    await reader.connect()
    await reader.wait_count(1)
    assert reader.received == [("m", 1)]
    await reader.leave()
    await writer.leave()


async def test_admin_rejects_bad_requests_precisely(start_server):
    server = await start_server()
    cases = [
        ({"name": "nope", "action": "crash"}, "unknown failpoint"),
        ({"name": "after_commit", "action": "explode"}, "unknown action"),
        ({"name": "after_commit", "action": "delay"}, "delay needs 'ms'"),
        ({"name": "after_commit", "action": "error", "count": 0}, "'count'"),
        ({"name": "after_commit", "action": "error", "extra": 1}, "unknown field"),
        ({"action": "error"}, "required"),
        (["after_commit"], "JSON object"),
    ]
    for body, words in cases:
        status, answer = await _admin(server.url, body)  # type: ignore[arg-type]
        assert status == 400 and words in answer["error"], (body, answer)
    status, state = await _admin(server.url, {"name": "during_sync", "action": "delay", "ms": 5})
    assert status == 200
    assert state["armed"] == {"during_sync": {"action": "delay", "ms": 5, "remaining": None}}
    status, state = await _admin(server.url, {"name": "during_sync", "action": "off"})
    assert state["armed"] == {}


def test_admin_is_loopback_only() -> None:
    assert _loopback(SimpleNamespace(remote="127.0.0.1"))  # type: ignore[arg-type]
    assert _loopback(SimpleNamespace(remote="::1"))  # type: ignore[arg-type]
    assert not _loopback(SimpleNamespace(remote="10.1.2.3"))  # type: ignore[arg-type]
    assert not _loopback(SimpleNamespace(remote=None))  # type: ignore[arg-type]


def test_spec_parsing() -> None:
    fp = Failpoints()
    fp.arm_spec("after_commit=crash; before_insert=delay(200)*3;during_sync=error*1")
    assert fp.state()["armed"] == {
        "after_commit": {"action": "crash", "ms": 0, "remaining": None},
        "before_insert": {"action": "delay", "ms": 200, "remaining": 3},
        "during_sync": {"action": "error", "ms": 0, "remaining": 1},
    }
    for bad in ("after_commit", "after_commit=boom", "x=crash", "before_insert=delay(a)"):
        with pytest.raises(BadFailpoint):
            Failpoints().arm_spec(bad)


async def test_count_limits_hits() -> None:
    fp = Failpoints()
    fp.arm("before_insert", "error", count=2)
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await fp.hit("before_insert")
    await fp.hit("before_insert")
    assert len(fp.fired) == 2
