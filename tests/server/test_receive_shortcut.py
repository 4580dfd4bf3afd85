"""The direct receive path of websocket-only sockets, seen from a raw websocket client.

A raw client shows what a Socket.IO client library would hide: the exact ack
frame and its id, the order of the broadcast copy and the ack, frames the
shortcut must leave to python-socketio, and the silence timeout that replaced
engine.io's per-frame `wait_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp

from faultlab.harness.processes import Child
from faultlab.server.transport import SilenceWatch

DEADLINE = 10.0


class RawClient:
    """Engine.IO v4 over one websocket, Socket.IO on "/": frames in, frames out."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, *, answer_pings: bool) -> None:
        self.ws = ws
        self.answer_pings = answer_pings

    async def frame(self, timeout: float = DEADLINE) -> str | None:
        """The next text frame other than a ping (answered if asked); None once closed."""
        end = time.monotonic() + timeout
        while True:
            msg = await self.ws.receive(timeout=max(0.01, end - time.monotonic()))
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return None
            if msg.data == "2":
                if self.answer_pings:
                    await self.ws.send_str("3")
                continue
            return str(msg.data)

    async def idle(self, seconds: float) -> int:
        """Answer pings for `seconds`; the number answered. Fails if anything else arrives."""
        end = time.monotonic() + seconds
        pings = 0
        while (left := end - time.monotonic()) > 0:
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                break
            assert (msg.type, msg.data) == (aiohttp.WSMsgType.TEXT, "2"), msg
            await self.ws.send_str("3")
            pings += 1
        return pings

    async def frames_until(self, prefix: str) -> list[str]:
        """Frames up to and including the first that starts with `prefix`."""
        got: list[str] = []
        while not got or not got[-1].startswith(prefix):
            frame = await self.frame()
            assert frame is not None, f"closed before a {prefix!r} frame; got {got}"
            got.append(frame)
        return got


@asynccontextmanager
async def raw_client(server: Child, *, answer_pings: bool = True) -> AsyncIterator[RawClient]:
    url = f"{server.url}/socket.io/?EIO=4&transport=websocket"
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        client = RawClient(ws, answer_pings=answer_pings)
        opening = await client.frame()
        assert opening is not None and opening.startswith("0"), opening
        await ws.send_str("40")
        connected = await client.frame()
        assert connected is not None and connected.startswith("40{"), connected
        yield client


def rows(db: Path) -> list[tuple[int, str | None, str]]:
    with sqlite3.connect(db) as conn:
        query = "SELECT id, client_offset, content FROM messages ORDER BY id"
        return conn.execute(query).fetchall()


async def test_ack_follows_the_senders_own_broadcast_copy(start_server, db: Path) -> None:
    server = await start_server("--delivery", "exactly-once")
    async with raw_client(server) as client:
        await client.ws.send_str('421["chat message","hello","o-1"]')
        frames = await client.frames_until("43")
    assert frames == ['42["chat message","hello",1]', "431[]"]
    assert rows(db) == [(1, "o-1", "hello")]


async def test_ack_ids_are_read_as_python_socketio_reads_them(start_server, db: Path) -> None:
    """Leading zeros go (`007` acks as 7); an id too long for the shortcut still gets its ack."""
    server = await start_server("--delivery", "at-least-once")
    long_id = "1234567890123456789012"
    async with raw_client(server) as client:
        await client.ws.send_str('42007["chat message","a"]')
        assert (await client.frames_until("43"))[-1] == "437[]"
        await client.ws.send_str(f'42{long_id}["chat message","b"]')
        assert (await client.frames_until("43"))[-1] == f"43{long_id}[]"
    assert [r[2] for r in rows(db)] == ["a", "b"]


async def test_an_event_without_ack_id_is_stored_and_broadcast(start_server, db: Path) -> None:
    server = await start_server("--delivery", "at-least-once")
    async with raw_client(server) as client, raw_client(server) as other:
        await client.ws.send_str('42["chat message","no ack"]')
        assert await other.frame() == '42["chat message","no ack",1]'
        assert await client.frame() == '42["chat message","no ack",1]'
    assert [r[2] for r in rows(db)] == ["no ack"]


async def test_frames_the_shortcut_declines_behave_as_before(start_server, db: Path) -> None:
    """Rejections, bad JSON, unknown events and other namespaces go through python-socketio."""
    server = await start_server("--delivery", "exactly-once")
    async with raw_client(server) as client:
        await client.ws.send_str('421["chat message",""]')
        await client.ws.send_str('422["chat message","x"]')
        await client.ws.send_str('423["chat message",5,"o-3"]')
        # JSON that orjson refuses and python-socketio's json reads
        await client.ws.send_str('428["chat message","x",NaN]')
        await client.ws.send_str('429["chat message","x",123456789012345678901234567890]')
        acks = [f for f in await client.frames_until("439") if f.startswith("43")]
        assert [json.loads(a[3:])[0]["error"] for a in acks] == [
            "content_empty",
            "client_offset_missing",
            "content_not_string",
            "client_offset_not_string",
            "client_offset_not_string",
        ]
        await client.ws.send_str('424["chat message",')
        await client.ws.send_str('425["no such event","x","o-5"]')
        await client.ws.send_str('42/elsewhere,6["chat message","x","o-6"]')
        await client.ws.send_str('427["chat message","after","o-7"]')
        frames = await client.frames_until("43")
    assert frames == ['42["chat message","after",1]', "437[]"]
    assert rows(db) == [(1, "o-7", "after")]
    assert "message async handler error" in server.log_path.read_text()


async def test_a_silent_client_is_closed_after_ping_interval_plus_timeout(start_server) -> None:
    """Closed by the silence watch (`transport close`) or engine.io's ping check, if sooner.

    Both come due at ping interval + timeout after the last pong; the watch
    replaced engine.io's per-frame `wait_for`, the ping check is engine.io's own.
    """
    server = await start_server("--ping-interval", "0.4", "--ping-timeout", "0.4")
    async with raw_client(server, answer_pings=False) as client:
        began = time.monotonic()
        assert await client.frame(timeout=DEADLINE) is None
        silent_for = time.monotonic() - began
    # due 0.8 s after the client's last frame (its CONNECT, sent shortly before `began`);
    # well above the 0.4 s a watch armed on the ping interval alone would give
    assert 0.6 <= silent_for < DEADLINE, silent_for
    deadline = time.monotonic() + DEADLINE
    reasons = ("disconnected: transport close", "disconnected: ping timeout")
    while not any(r in server.log_path.read_text() for r in reasons):
        assert time.monotonic() < deadline, "no disconnect logged"
        await asyncio.sleep(0.05)


async def test_the_silence_watch_rearms_while_frames_arrive_and_fires_after() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.create_task(asyncio.sleep(DEADLINE))
    watch = SilenceWatch(loop, 0.25, reader)  # far above the 0.02 s between frames
    try:
        heard_until = loop.time() + 0.6
        while loop.time() < heard_until:
            watch.heard = loop.time()
            await asyncio.sleep(0.02)
        assert not reader.done() and not watch.fired
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(reader, DEADLINE)
        assert reader.cancelled() and watch.fired
        # a full limit of silence after the last frame heard, however late the loop ran
        assert loop.time() - watch.heard >= 0.25
    finally:
        watch.stop()
        reader.cancel()


async def test_a_client_that_answers_pings_stays_past_many_timeouts(start_server, db) -> None:
    server = await start_server("--ping-interval", "0.2", "--ping-timeout", "0.2")
    async with raw_client(server) as client:
        assert await client.idle(2.0) >= 5  # five silence limits pass
        await client.ws.send_str('421["chat message","still here","o-1"]')
        assert (await client.frames_until("43"))[-1] == "431[]"
    assert rows(db) == [(1, "o-1", "still here")]
