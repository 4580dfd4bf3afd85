"""Server delivery: a connection that was not recovered gets every row after its serverOffset."""

from __future__ import annotations

import asyncio
import random

import pytest
from chat_client import ChatClient, rows


async def _fill(url: str, n: int) -> None:
    sender = ChatClient(url)
    await sender.connect()
    for i in range(n):
        assert await sender.send(f"old-{i}", f"old-{i}") is None
    await sender.leave()


async def test_catch_up_sends_rows_after_the_offset_in_order(start_server, db):
    server = await start_server()
    await _fill(server.url, 6)
    late = ChatClient(server.url)
    late.server_offset = 3
    await late.connect()
    await late.wait_count(3)
    await asyncio.sleep(0.1)
    assert late.received == [("old-3", 4), ("old-4", 5), ("old-5", 6)]
    await late.leave()


@pytest.mark.parametrize("offset", [-1, 2.5, "3", True, 999, None])
async def test_invalid_or_too_large_offsets_get_everything(start_server, db, offset):
    server = await start_server()
    await _fill(server.url, 3)
    client = ChatClient(server.url)
    client.auth_override = {"serverOffset": offset}
    await client.connect()
    await client.wait_count(3)
    await asyncio.sleep(0.1)
    assert client.received == [("old-0", 1), ("old-1", 2), ("old-2", 3)]
    await client.leave()


async def test_catch_up_races_concurrent_broadcasts_without_gap_or_repeat(start_server, db):
    """Clients join at random moments while four senders keep broadcasting.

    The catch-up from the store runs while rows are being broadcast; `during_sync`
    adds a delay between the store read and going live, widening the window. Every
    joiner must see each row after its offset exactly once, in id order.
    """
    server = await start_server("--failpoints", "during_sync=delay(30)")
    rng = random.Random(7)
    await _fill(server.url, 40)
    senders = [ChatClient(server.url) for _ in range(4)]
    await asyncio.gather(*(s.connect() for s in senders))
    joiners: list[tuple[int, ChatClient]] = []

    async def send_all(i: int, s: ChatClient) -> None:
        for j in range(40):
            assert await s.send(f"s{i}-{j}", f"s{i}-{j}") is None

    async def join_some() -> None:
        for _ in range(12):
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            client = ChatClient(server.url)
            client.server_offset = rng.randrange(0, 40)
            joiners.append((client.server_offset, client))
            await client.connect()

    await asyncio.gather(join_some(), *(send_all(i, s) for i, s in enumerate(senders)))
    stored = rows(db)
    assert len(stored) == 200
    for start, client in joiners:
        expected = [(content, row_id) for row_id, _, content in stored if row_id > start]
        await client.wait_count(len(expected), timeout=10)
        await asyncio.sleep(0.05)
        assert client.received == expected
    await asyncio.gather(*(s.leave() for s in senders), *(c.leave() for _, c in joiners))


async def test_polling_transport_catches_up_too(start_server, db):
    server = await start_server()
    await _fill(server.url, 3)
    client = ChatClient(server.url, transport="polling")
    client.server_offset = 1
    await client.connect()
    assert await client.send("new", "p-1") is None
    await client.wait_count(3)
    assert client.received == [("old-1", 2), ("old-2", 3), ("new", 4)]
    await client.leave()
