"""Each delivery level's server half: what is stored, acked and broadcast."""

from __future__ import annotations

import asyncio

import aiohttp
from chat_client import ChatClient, rows


async def test_exactly_once_acks_a_duplicate_without_storing_it(start_server, db):
    server = await start_server("--delivery", "exactly-once")
    sender, watcher = ChatClient(server.url), ChatClient(server.url)
    await sender.connect()
    await watcher.connect()
    assert await sender.send("hello", "s-1") is None
    assert await sender.send("hello", "s-1") is None  # the retry: acked, not stored again
    assert await sender.send("world", "s-2") is None
    await watcher.wait_count(2)
    await asyncio.sleep(0.2)  # a second broadcast of s-1 would have arrived by now
    stored = rows(db)  # ids may have gaps: a conflicting insert consumes one
    assert [(r[1], r[2]) for r in stored] == [("s-1", "hello"), ("s-2", "world")]
    assert watcher.received == [("hello", stored[0][0]), ("world", stored[1][0])]
    await sender.leave()
    await watcher.leave()


async def test_exactly_once_needs_a_client_offset(start_server, db):
    server = await start_server("--delivery", "exactly-once")
    client = ChatClient(server.url)
    await client.connect()
    assert await client.send("alone") == {
        "error": "client_offset_missing",
        "detail": "exactly-once needs (content, client_offset)",
    }
    assert rows(db) == []
    await client.leave()


async def test_at_least_once_stores_retries_again(start_server, db):
    server = await start_server("--delivery", "at-least-once")
    client = ChatClient(server.url)
    await client.connect()
    assert await client.send("hello", "c-1") is None
    assert await client.send("hello", "c-1") is None
    assert await client.send("no offset") is None
    await client.wait_count(3)
    assert rows(db) == [(1, "c-1", "hello"), (2, "c-1", "hello"), (3, None, "no offset")]
    assert client.received == [("hello", 1), ("hello", 2), ("no offset", 3)]
    await client.leave()


async def test_weak_levels_accept_emits_without_ack_or_offset(start_server, db):
    for level in ("at-most-once", "buffered"):
        path = db.with_name(f"{level}.db")
        server = await start_server("--delivery", level, path=path)
        client = ChatClient(server.url)
        await client.connect()
        await client.send_no_ack("first")
        await client.send_no_ack("second", "c-2")
        await client.wait_count(2)
        assert client.received == [("first", 1), ("second", 2)]
        assert rows(path) == [(1, None, "first"), (2, "c-2", "second")]
        await client.leave()


async def test_ack_follows_the_broadcast_and_the_commit(start_server, db):
    """This server acks after it broadcasts: the sender has its own row when the ack lands."""
    server = await start_server()
    client = ChatClient(server.url)
    await client.connect()
    for i in range(5):
        assert await client.send(f"m{i}", f"c-{i}") is None
        assert (f"m{i}", i + 1) in client.received
        assert rows(db)[-1] == (i + 1, f"c-{i}", f"m{i}")
    await client.leave()


async def test_many_concurrent_senders_share_commits_and_keep_id_order(start_server, db):
    server = await start_server()
    senders = [ChatClient(server.url) for _ in range(8)]
    watcher = ChatClient(server.url)
    await asyncio.gather(watcher.connect(), *(s.connect() for s in senders))

    async def send_all(i: int, s: ChatClient) -> None:
        for j in range(10):
            assert await s.send(f"s{i}-{j}", f"s{i}-{j}") is None

    await asyncio.gather(*(send_all(i, s) for i, s in enumerate(senders)))
    await watcher.wait_count(80)
    stored = rows(db)
    assert len(stored) == 80
    assert watcher.offsets() == [r[0] for r in stored]
    assert watcher.contents() == [r[2] for r in stored]
    for i in range(8):  # each sender's messages stored in its order
        mine = [r[2] for r in stored if r[2].startswith(f"s{i}-")]
        assert mine == [f"s{i}-{j}" for j in range(10)]
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz") as r:
        health = await r.json()
    assert health["messages"] == 80
    assert health["level"] == "exactly-once" and health["recovery"] == "off"
    assert health["pid"] == server.pid and health["status"] == "ok"
    await asyncio.gather(watcher.leave(), *(s.leave() for s in senders))
