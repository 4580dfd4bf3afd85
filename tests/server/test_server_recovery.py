"""Connection state recovery: memory (as the official server) and durable (survives restarts)."""

from __future__ import annotations

import asyncio

import pytest
from chat_client import ChatClient


async def _pair(url: str) -> tuple[ChatClient, ChatClient]:
    user, other = ChatClient(url, csr=True), ChatClient(url, csr=True)
    assert not await user.connect()
    assert not await other.connect()
    return user, other


async def _say(client: ChatClient, *contents: str) -> None:
    for content in contents:
        assert await client.send(content, content) is None


@pytest.mark.parametrize("mode", ["memory", "durable"])
async def test_recovers_again_and_again_with_each_missed_event_once(start_server, mode):
    server = await start_server("--recovery", mode)
    user, other = await _pair(server.url)
    await _say(other, "a")
    await user.wait_count(1)
    assert user.received == [("a", 1, "1")]  # the CSR offset is appended, as a string
    for round_ in range(3):
        await user.drop()
        missed = [f"r{round_}-{i}" for i in range(2)]
        await _say(other, *missed)
        assert await user.connect(), f"round {round_} not recovered"
        await user.wait_count(1 + 2 * (round_ + 1))
    await _say(other, "after")
    await user.wait_count(8)
    await asyncio.sleep(0.1)
    assert user.contents() == ["a", "r0-0", "r0-1", "r1-0", "r1-1", "r2-0", "r2-1", "after"]
    assert user.offsets() == list(range(1, 9))
    await user.leave()
    await other.leave()


@pytest.mark.parametrize("mode", ["memory", "durable"])
async def test_recovers_a_client_that_received_nothing(start_server, mode):
    """The official client sends `pid` without `offset` then (socket.io #5538)."""
    server = await start_server("--recovery", mode)
    user, other = await _pair(server.url)
    await user.drop()
    assert user.offset is None
    await _say(other, "x", "y")
    assert await user.connect()
    await user.wait_count(2)
    await asyncio.sleep(0.1)
    assert user.received == [("x", 1, "1"), ("y", 2, "2")]
    await user.leave()
    await other.leave()


async def test_recovery_off_gives_no_pid_and_server_delivery_catches_up(start_server):
    server = await start_server("--recovery", "off")
    user, other = ChatClient(server.url, csr=True), ChatClient(server.url)
    await user.connect()
    await other.connect()
    assert user.pid is None
    await _say(other, "a")
    await user.wait_count(1)
    await user.drop()
    await _say(other, "b")
    assert not await user.connect()
    await user.wait_count(2)
    assert user.received == [("a", 1), ("b", 2)]
    await user.leave()
    await other.leave()


@pytest.mark.parametrize(
    "auth",
    [
        {"pid": "no-such-session", "offset": "1"},
        {"pid": 12, "offset": "1"},
        {"pid": ["x"]},
        {"pid": "x" * 500, "offset": "1"},
        "not an object",
    ],
)
async def test_unknown_or_malformed_recovery_gives_a_plain_new_session(start_server, auth):
    server = await start_server("--recovery", "memory")
    user, other = await _pair(server.url)
    await _say(other, "a")
    client = ChatClient(server.url, csr=True)
    client.auth_override = auth
    assert not await client.connect()
    assert client.pid and client.sid
    await client.wait_count(1)
    assert client.received == [("a", 1, "1")]
    await client.leave()
    await user.leave()
    await other.leave()


async def test_unknown_offset_of_a_live_session_gives_a_new_session(start_server):
    server = await start_server("--recovery", "memory")
    user, other = await _pair(server.url)
    await _say(other, "a")
    await user.wait_count(1)
    await user.drop()
    user.offset = "999"
    assert not await user.connect()
    await user.leave()
    await other.leave()


async def test_expired_session_is_not_recovered(start_server):
    server = await start_server("--recovery", "memory", "--recovery-window", "0.3")
    user, other = await _pair(server.url)
    await user.drop()
    await asyncio.sleep(0.5)
    assert not await user.connect()
    await user.leave()
    await other.leave()


async def test_namespace_disconnect_does_not_keep_the_session(start_server):
    server = await start_server("--recovery", "memory")
    user, other = await _pair(server.url)
    await _say(other, "a")
    await user.wait_count(1)
    await user.namespace_disconnect()
    await user.wait_for(lambda: any("client disconnect" in line for line in server.log_tail(50)))
    await user.drop()
    assert not await user.connect()
    await user.leave()
    await other.leave()


async def test_memory_recovery_fails_when_the_last_packet_left_the_window(start_server):
    """As the official server: the offset must still be in the packet buffer."""
    server = await start_server("--recovery", "memory", "--recovery-window", "0.6")
    user, other = await _pair(server.url)
    await _say(other, "a")
    await user.wait_count(1)
    await asyncio.sleep(0.8)
    await user.drop()
    assert not await user.connect()
    await user.leave()
    await other.leave()


async def test_durable_recovery_survives_an_old_last_packet(start_server):
    server = await start_server("--recovery", "durable", "--recovery-window", "0.6")
    user, other = await _pair(server.url)
    await _say(other, "a")
    await user.wait_count(1)
    await asyncio.sleep(0.8)
    await user.drop()
    assert await user.connect()
    await user.leave()
    await other.leave()


@pytest.mark.parametrize("how", ["kill", "terminate"])
async def test_durable_recovery_survives_a_restart(start_server, how):
    server = await start_server("--recovery", "durable")
    user, other = await _pair(server.url)
    await _say(other, "a")
    await user.wait_count(1)
    if how == "kill":
        await server.kill()
    else:
        assert await server.terminate() == 0
    await server.restart()
    await other.drop()
    assert await other.connect()
    await _say(other, "b", "c")
    await user.drop()
    assert await user.connect()
    await user.wait_count(3)
    await asyncio.sleep(0.1)
    assert user.received == [("a", 1, "1"), ("b", 2, "2"), ("c", 3, "3")]
    await user.leave()
    await other.leave()


async def test_memory_recovery_does_not_survive_a_restart(start_server):
    server = await start_server("--recovery", "memory")
    user, other = await _pair(server.url)
    await _say(other, "a")
    await user.wait_count(1)
    await server.kill()
    await server.restart()
    await user.drop()
    assert not await user.connect()
    await user.wait_count(1)
    await user.leave()
    await other.leave()
