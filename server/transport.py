"""The websocket transport: no permessage-deflate, and packets written straight to the socket.

Compression: the official client offers permessage-deflate and the official server
declines it by default (`perMessageDeflate: false`); aiohttp would accept it and
then deflate every frame for every recipient. This keeps the official default.

Direct reads: such a socket also runs its own receive loop (`DirectSocket.serve`)
instead of engine.io's, which starts a task and an `asyncio.wait_for` per frame
and a task per message. Here one loop timer watches for silence (ping interval +
timeout without a frame, as engine.io's receive timeout), and a Socket.IO EVENT
frame is first offered to a synchronous `Shortcut` (see `receive`); whatever the
shortcut declines, and every other packet, goes through engine.io and
python-socketio as before.

Direct writes: python-engineio puts every outgoing packet on a per-socket queue
that a writer task drains, so each delivery costs a queue hop, a task wake-up and
a timeout task. A socket that connected over websocket (no polling phase) here
writes a packet straight to its websocket when nothing is waiting in that queue
and the transport's buffer has room, so the write never suspends; otherwise the
packet takes the queue, and direct writes resume only once the writer has sent
everything queued. Order is the order of `send` calls either way. Sockets that
start on polling keep engine.io's queue for their whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import struct
import time
from collections.abc import Callable
from typing import Any

from aiohttp.web import WebSocketResponse
from engineio import exceptions as eio_exceptions
from engineio import packet as eio_packet
from engineio.async_drivers.aiohttp import WebSocket
from engineio.async_socket import AsyncSocket

log = logging.getLogger("faultlab.server.transport")

Shortcut = Callable[[str, str], bool]
"""`(eio_sid, socketio_text) -> taken`: handles a Socket.IO EVENT without a task, or declines."""


def text_frame(text: str) -> bytes:
    """One unmasked, uncompressed websocket text frame (RFC 6455 §5.2), as a server sends it."""
    data = text.encode()
    size = len(data)
    if size < 126:
        return bytes((0x81, size)) + data
    if size < 1 << 16:
        return struct.pack("!BBH", 0x81, 126, size) + data
    return struct.pack("!BBQ", 0x81, 127, size) + data


class DirectSocket(AsyncSocket):  # type: ignore[misc]
    """An engine.io websocket socket that writes without its queue when it can."""

    ws: WebSocketResponse
    transport: asyncio.Transport | None
    queued: int
    """Packets put on the engine.io queue and not yet written by its writer task."""
    high: int
    """The transport's write-buffer high-water mark: a write that reaches it could wait."""
    ping_timeout: float
    """The server's, read once: `write_now` runs once per recipient of every broadcast."""

    def adopt(self, ws: WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self.ws = ws
        self.transport = transport
        self.queued = self.queue.qsize()
        self.high = transport.get_write_buffer_limits()[1] if transport is not None else 0
        self.ping_timeout = self.server.ping_timeout

    async def poll(self) -> list[eio_packet.Packet]:
        """The writer task's wait, without engine.io's idle timeout.

        With direct writes the queue is idle for long stretches, and engine.io's
        writer closes the websocket when its queue stays empty for a ping interval
        plus timeout. The receive loop still has that timeout, and it queues None
        when it ends, which stops the writer.
        """
        first = await self.queue.get()
        self.queue.task_done()
        if first is None:
            return []
        packets = [first]
        while not self.queue.empty():
            pkt = self.queue.get_nowait()
            self.queue.task_done()
            if pkt is None:
                self.queue.put_nowait(None)
                break
            packets.append(pkt)
        return packets

    def _alive(self) -> bool:
        """What `check_ping_timeout` checks, without a coroutine per packet."""
        last = self.last_ping
        return not self.closed and not (last and time.time() - last > self.server.ping_timeout)

    def write_now(self, frames: bytes, now: float) -> bool:
        """Write `frames` at once if nothing can make this socket wait or close; True if written.

        Every direct write goes through here. The broadcast calls it per recipient
        with the clock read once per batch (`now`), so no coroutine per socket; the
        high-water mark and ping timeout are read at adoption (nothing changes
        them). aiohttp's `closed` property is read as the attribute it returns
        (`_closed`, checked by `test_transport_assumptions`), which saves a Python
        call per recipient. False leaves the packet to the caller, which checks
        the ping timeout and takes the queue.
        """
        transport = self.transport
        last = self.last_ping
        if (
            self.queued
            or self.closed
            or transport is None
            or (last and now - last > self.ping_timeout)
            or self.ws._closed
            or transport.is_closing()
            or transport.get_write_buffer_size() + len(frames) >= self.high
        ):
            return False
        transport.write(frames)
        return True

    async def send_frames(self, frames: bytes, pkts: list[eio_packet.Packet]) -> None:
        """Send `pkts`, already framed together as `frames` (see `text_frame`), in one write."""
        if self.write_now(frames, time.time()):
            return
        if not self._alive() and not await self.check_ping_timeout():
            return
        for pkt in pkts:
            self.queued += 1
            await self.queue.put(pkt)

    async def send_text(self, text: str, pkt: eio_packet.Packet) -> None:
        """Send `pkt`, whose encoding is `text`, directly when possible.

        The frame goes straight to the transport, as `send_frames` does: the
        bytes aiohttp's writer would produce for an uncompressed server frame,
        without its per-frame checks and coroutine.
        """
        if self.write_now(text_frame(text), time.time()):
            return
        if not self._alive() and not await self.check_ping_timeout():
            return
        self.queued += 1
        await self.queue.put(pkt)

    async def serve(self, ws: PlainWebSocket, shortcut: Shortcut | None) -> None:
        """engine.io's websocket handler for a socket that never polled, with direct reads.

        As `AsyncSocket._websocket_handler` does without an upgrade: mark the socket
        connected, start the queue's writer, read frames until the client closes or
        stays silent for ping interval + timeout, then stop the writer and close the
        socket as `transport close`. Frames are read in this task, one after the
        other; a `42...` text frame goes to `shortcut` first.
        """
        self.connected = True
        self.upgraded = True
        writer = asyncio.ensure_future(self._write_queued(ws))
        loop = asyncio.get_running_loop()
        silence = self.server.ping_interval + self.server.ping_timeout
        limit = self.server.max_http_buffer_size
        watch = SilenceWatch(loop, silence, asyncio.current_task())
        receive = self.ws.receive
        sid = self.sid
        cancelled = False
        try:
            while True:
                try:
                    msg = await receive()
                except (RuntimeError, OSError) as exc:
                    log.info("receive error on %s: %s", sid, exc)
                    break
                data = msg.data
                if not isinstance(data, (str, bytes)) or len(data) > limit:
                    break
                watch.heard = loop.time()
                if (
                    shortcut is not None
                    and type(data) is str
                    and data.startswith("42")
                    and shortcut(sid, data[1:])
                ):
                    continue
                try:
                    await self.receive(eio_packet.Packet(encoded_packet=data))
                except eio_exceptions.UnknownPacketError:
                    pass
                except eio_exceptions.SocketIsClosedError:
                    log.info("receive error: socket %s is closed", sid)
                    break
                except Exception:
                    log.exception("receive error on %s", sid)
        except asyncio.CancelledError:
            # the silence watch's own cancel ends the loop; any other is passed on
            # after the same cleanup (engine.io's loop swallows it)
            cancelled = not watch.fired
            if not cancelled:
                asyncio.current_task().uncancel()  # type: ignore[union-attr]
        finally:
            watch.stop()
        self.queue.put_nowait(None)
        await writer
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        if cancelled:
            raise asyncio.CancelledError

    async def _write_queued(self, ws: PlainWebSocket) -> None:
        """engine.io's websocket writer: drain the queue until it yields None, then close."""
        while True:
            packets = await self.poll()
            if not packets:
                break
            try:
                for pkt in packets:
                    await ws.send(pkt.encode())
            except Exception:
                break
        with contextlib.suppress(Exception):
            await ws.close()

    async def send(self, pkt: eio_packet.Packet) -> None:
        encoded = pkt.encode()
        if isinstance(encoded, str):
            await self.send_text(encoded, pkt)
            return
        if not self._alive() and not await self.check_ping_timeout():
            return
        self.queued += 1
        await self.queue.put(pkt)


class SilenceWatch:
    """One loop timer per silence period, not per frame: fires when nothing was heard for `limit`.

    The reader stamps `heard`; when the timer comes due it re-arms itself at
    `heard + limit` if a frame arrived meanwhile, else cancels the reading task.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, limit: float, task: asyncio.Task[Any] | None
    ) -> None:
        self.loop = loop
        self.limit = limit
        self.task = task
        self.heard = loop.time()
        self.fired = False
        self.timer = loop.call_at(self.heard + limit, self._due)

    def _due(self) -> None:
        due = self.heard + self.limit
        if self.loop.time() < due:
            self.timer = self.loop.call_at(due, self._due)
            return
        self.fired = True
        if self.task is not None:
            self.task.cancel()

    def stop(self) -> None:
        self.timer.cancel()


class PlainWebSocket(WebSocket):  # type: ignore[misc]
    """engineio's aiohttp websocket, with compression off and direct reads and writes."""

    direct: DirectSocket | None = None

    def __init__(self, handler: Any, server: Any, shortcut: Shortcut | None = None) -> None:
        super().__init__(handler, server)
        self.shortcut = shortcut

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        socket = getattr(self.handler, "__self__", None)
        if type(socket) is AsyncSocket and not socket.connected:
            socket.__class__ = DirectSocket
            socket.adopt(self._sock, request.transport)
            self.direct = socket
            await socket.serve(self, self.shortcut)
            return self._sock
        await self.handler(self)
        return self._sock

    async def send(self, message: str | bytes) -> None:
        """The writer task's path: count the queued packet as written."""
        try:
            await super().send(message)
        finally:
            if self.direct is not None:
                self.direct.queued -= 1


def use_plain_websockets(eio: Any, shortcut: Shortcut | None = None) -> None:
    """Answer websockets with `PlainWebSocket`, EVENT frames offered to `shortcut` first."""
    eio._async = {**eio._async, "websocket": functools.partial(PlainWebSocket, shortcut=shortcut)}
