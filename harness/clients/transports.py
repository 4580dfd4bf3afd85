"""Engine.IO transports for the lean client: websocket, HTTP long-polling, upgrade.

A transport carries Engine.IO packets (text) and nothing else: `run(on_packet)` reads
until the connection ends and returns why, `send` writes one packet, `abort` cuts
the connection with no goodbye (no Engine.IO close packet, no WebSocket close frame),
`close` says goodbye. Ping/pong and Socket.IO live in the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import aiohttp
from aiohttp.client import WebSocketDataQueue
from aiohttp.http import WebSocketReader

from faultlab.harness.clients import wire

log = logging.getLogger(__name__)
OnPacket = Callable[[str], None]


def background(tasks: set[asyncio.Task[None]], coro: Coroutine[Any, Any, None]) -> None:
    """Run `coro` as a task kept alive in `tasks` until it finishes."""
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


class TransportClosed(ConnectionError):
    """A send on a transport that has already ended."""


class Transport(Protocol):
    name: str
    info: wire.OpenInfo

    async def run(self, on_packet: OnPacket) -> str: ...
    async def send(self, packet: str) -> None: ...
    def abort(self) -> None: ...
    async def close(self) -> None: ...


def shutdown(sock: Any) -> None:
    """Shut a transport's socket down both ways, under whatever speaks on it: the peer
    sees the connection end with no goodbye. Through a socket object of our own on
    the same descriptor, since uvloop's transport sockets refuse `shutdown()`."""
    fd = sock.fileno() if sock is not None else -1
    if fd < 0:
        return
    own = socket.socket(fileno=fd)
    try:
        own.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
    finally:
        own.detach()  # the descriptor stays the transport's to close


def _eio_url(base: str, transport: str, sid: str | None = None) -> str:
    url = f"{base.rstrip('/')}{wire.EIO_PATH}?EIO=4&transport={transport}"
    return url if sid is None else f"{url}&sid={sid}"


def _ws_url(http_url: str) -> str:
    return "ws" + http_url.removeprefix("http")


class _TextQueue(WebSocketDataQueue):
    """aiohttp's WebSocket message queue, except that a text message goes straight to
    `on_text` from the protocol's `data_received`: no future, no task wake-up and no
    `receive()` call per frame, which was most of the client's CPU per message.
    Everything else (close, ping, errors) is queued for `receive()` as before."""

    on_text: OnPacket | None = None

    def feed_data(self, data: aiohttp.WSMessage, size: int) -> None:  # type: ignore[override]
        on_text = self.on_text
        if on_text is not None and data[0] is _TEXT:
            on_text(data[1])
        else:
            super().feed_data(data, size)


_TEXT = aiohttp.WSMsgType.TEXT


def _direct_text(ws: aiohttp.ClientWebSocketResponse) -> _TextQueue | None:
    """Re-plumb `ws` so text frames reach a callback directly (see `_TextQueue`).

    Called only where the server sends nothing until the client speaks again (after
    the open packet, or after the `3probe` of an upgrade), so no frame can be
    half-parsed by the parser being replaced. Without permessage-deflate only (the
    lean client never offers it), and only on aiohttp's usual plumbing; otherwise
    the frames keep going through `receive()`.
    """
    response = getattr(ws, "_response", None)
    old = getattr(ws, "_reader", None)
    proto = getattr(getattr(response, "connection", None), "protocol", None)
    if ws.compress or proto is None or not isinstance(old, WebSocketDataQueue) \
            or old._buffer or old.is_eof():
        return None
    queue = _TextQueue(proto, 2**16, loop=asyncio.get_running_loop())
    parser = WebSocketReader(queue, 0, False, True)
    ws._reader, ws._parser = queue, parser  # type: ignore[assignment]
    proto.set_parser(parser, queue)
    _feed_parser_directly(proto, parser, queue, ws)
    return queue


def _feed_parser_directly(proto: Any, parser: WebSocketReader, queue: _TextQueue,
                          ws: aiohttp.ClientWebSocketResponse) -> None:
    """Bytes from the socket straight into a `_Frames` splitter, skipping the protocol's
    `data_received`: with no read timeout and no heartbeat (the lean client sets
    neither) all it adds per read is a timer check, a callback check and a call.
    A parse error still reaches `receive()` through the queue, as before.

    Also caps the loop's read size: asyncio's default 256 KiB buffer per `recv` is
    above glibc's mmap threshold, which costs an mmap, an mremap and a munmap per
    frame in a process that has not freed a large block yet.
    """
    transport = proto.transport
    if proto.read_timeout or getattr(ws, "_heartbeat", None) is not None or transport is None:
        return
    proto.data_received = _Frames(parser, queue).data_received
    if getattr(transport, "max_size", 0) > _READ_SIZE:
        transport.max_size = _READ_SIZE
    transport.set_protocol(proto)  # uvloop binds `data_received` when the protocol is set


_READ_SIZE = 64 * 1024  # below glibc's default mmap threshold (128 KiB)


class _Frames:
    """Splits a server's WebSocket byte stream at frame boundaries.

    A whole, unfragmented text frame goes straight to the queue's `on_text`, decoded:
    the common case, at 0.65-0.75 µs against 1.0-1.4 µs per frame through aiohttp's
    parser and queue (a hot loop). Every other frame (ping, close, binary, fragments,
    invalid UTF-8, or any frame while no `on_text` is set) is given whole to aiohttp's
    parser, which so always starts at a frame boundary and handles it exactly as
    before. Bytes that are not a frame a server may send (masked, reserved bits) and
    frames too large to buffer here go, with everything after them, to aiohttp's
    parser for good, which reports them as it always did.
    """

    __slots__ = ("_feed", "_fragmented", "_given_up", "_queue", "_tail")

    def __init__(self, parser: WebSocketReader, queue: _TextQueue) -> None:
        self._feed = parser.feed_data
        self._queue = queue
        self._tail = b""
        self._fragmented = False  # a fragmented message is in aiohttp's parser
        self._given_up = False

    def data_received(self, data: bytes) -> None:
        if self._given_up:
            self._feed(data)
            return
        on_text = self._queue.on_text
        size = len(data)
        if size >= 2 and data[0] == 0x81 and data[1] == size - 2 < 126 and on_text is not None \
                and not self._tail and not self._fragmented:
            try:  # the usual read: one whole short text frame
                text = data[2:].decode()
            except UnicodeDecodeError:
                pass  # the general path hands it to aiohttp
            else:
                on_text(text)
                return
        if self._tail:
            data, self._tail = self._tail + data, b""
            size = len(data)
        i = 0
        while size - i >= 2:
            first, length = data[i], data[i + 1]
            if length & 0x80 or first & 0x70:  # masked, or reserved bits: not ours to judge
                self._give_up(data[i:])
                return
            start = i + 2
            if length >= 126:
                start += 2 if length == 126 else 8
                if start > size:
                    break
                length = int.from_bytes(data[start - (2 if length == 126 else 8):start])
            end = start + length
            if end > size:
                if end - i > _READ_SIZE:
                    self._give_up(data[i:])
                    return
                break
            on_text = self._queue.on_text
            if first == 0x81 and on_text is not None and not self._fragmented:
                try:
                    text = data[start:end].decode()
                except UnicodeDecodeError:
                    self._to_parser(data[i:end])  # aiohttp fails it with 1007, as before
                else:
                    on_text(text)
            else:
                if first & 0x0F in (0, 1, 2):  # data frames: track fragmented messages
                    self._fragmented = not first & 0x80
                self._to_parser(data[i:end])
            i = end
            if self._given_up:
                if i < size:
                    self._feed(data[i:])
                return
        if i < size:
            self._tail = data[i:]

    def _to_parser(self, frame: bytes) -> None:
        """A whole frame to aiohttp's parser. Once it has failed the stream, or stalled with
        frames unparsed because nobody reads the queue, it gets everything after too: it
        ignores what follows a failure, and keeps the order after a stall, as before."""
        queue = self._queue
        self._feed(frame)
        if queue.exception() is not None or queue._stalled_reader is not None:
            self._given_up = True

    def _give_up(self, rest: bytes) -> None:
        self._given_up = True
        self._feed(rest)


class WebSocketTransport:
    """Engine.IO over one WebSocket; the receive loop is the lean client's hot path.

    Text frames are handed to `on_packet` inside the socket's `data_received` (see
    `_TextQueue`); `run` waits on `receive()` only for the end of the connection.
    """

    name = "websocket"

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, info: wire.OpenInfo) -> None:
        self.ws = ws
        self.info = info
        self._aborted = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._direct = _direct_text(ws)

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> WebSocketTransport:
        ws = await http.ws_connect(
            _ws_url(_eio_url(base, "websocket")), autoping=True, max_msg_size=0
        )
        try:
            msg = await ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise wire.ProtocolError(f"expected the Engine.IO open packet, got {msg.type.name}")
            return cls(ws, wire.parse_open(msg.data))
        except BaseException:
            await ws.close()
            raise

    async def run(self, on_packet: OnPacket) -> str:
        receive = self.ws.receive
        if self._direct is not None:
            self._direct.on_text = on_packet  # frames queued before now are read first below
        try:
            while True:
                msg = await receive()
                if msg.type is _TEXT:
                    on_packet(msg.data)
                elif msg.type is aiohttp.WSMsgType.ERROR:
                    log.warning("websocket error: %r", msg.data)
                    await self._dispose()
                    return "transport error"
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.CLOSING):
                    await self._dispose()
                    return "transport close"
        finally:
            if self._direct is not None:
                self._direct.on_text = None

    async def send(self, packet: str) -> None:
        if self.ws.closed or self._aborted:
            raise TransportClosed("websocket closed")
        try:
            await self.ws.send_str(packet)
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as exc:
            raise TransportClosed(str(exc)) from exc

    def abort(self) -> None:
        """Shut the TCP connection down under the WebSocket: no close frame is sent."""
        self._aborted = True
        shutdown(self.ws.get_extra_info("socket"))
        background(self._tasks, self._dispose())

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 1.0)

    async def _dispose(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.ws.close(), 1.0)


class PollingTransport:
    """Engine.IO over HTTP long-polling: one GET outstanding, one POST at a time.

    Packets to send are batched into one POST (the server refuses overlapping POSTs).
    Each polling transport has its own HTTP session so `abort` can cut its
    connections without touching other clients.
    """

    name = "polling"

    def __init__(self, http: aiohttp.ClientSession, base: str, info: wire.OpenInfo,
                 first: list[str]) -> None:
        self.http = http
        self.base = base
        self.info = info
        self.url = _eio_url(base, "polling", info.sid)
        self._first = first
        self._queue: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        self._ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pausing = False
        self._paused = asyncio.Event()
        self._timeout = aiohttp.ClientTimeout(total=info.ping_interval + info.ping_timeout + 5)

    @classmethod
    async def open(cls, base: str) -> PollingTransport:
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            async with http.get(_eio_url(base, "polling")) as resp:
                if resp.status != 200:
                    raise wire.ProtocolError(f"polling handshake answered HTTP {resp.status}")
                packets = wire.decode_payload(await resp.text())
            if not packets:
                raise wire.ProtocolError("polling handshake answered an empty payload")
            return cls(http, base, wire.parse_open(packets[0]), packets[1:])
        except BaseException:
            await http.close()
            raise

    async def run(self, on_packet: OnPacket) -> str:
        for packet in self._first:
            on_packet(packet)
        poller = asyncio.ensure_future(self._poll(on_packet))
        try:
            await asyncio.wait({poller, self._ended}, return_when=asyncio.FIRST_COMPLETED)
            if self._ended.done():
                return self._ended.result()
            return poller.result()
        finally:
            poller.cancel()
            with contextlib.suppress(BaseException):
                await poller
            if not self._pausing:
                await self.http.close()

    async def _poll(self, on_packet: OnPacket) -> str:
        while not self._pausing:
            try:
                async with self.http.get(self.url, timeout=self._timeout) as resp:
                    if resp.status != 200:
                        return "transport error"
                    payload = await resp.text()
            except (aiohttp.ClientError, OSError, TimeoutError):
                return "transport error"
            for packet in wire.decode_payload(payload):
                on_packet(packet)
                if packet == wire.EIO_CLOSE:
                    return "transport close"
        self._paused.set()
        return "upgraded"

    async def send(self, packet: str) -> None:
        if self._ended.done():
            raise TransportClosed("polling transport ended")
        self._queue.append(packet)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._flush())
        await asyncio.shield(self._writer)

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                async with self.http.post(
                    self.url, data=wire.encode_payload(batch).encode(), timeout=self._timeout,
                    headers={"Content-Type": "text/plain;charset=UTF-8"},
                ) as resp:
                    ok = resp.status == 200
                    await resp.read()
            except (aiohttp.ClientError, OSError, TimeoutError):
                ok = False
            if not ok:
                self._end("transport error")
                raise TransportClosed("polling POST failed")

    def _end(self, reason: str) -> None:
        if not self._ended.done():
            self._ended.set_result(reason)

    async def pause(self) -> None:
        """Stop polling for an upgrade: wait for the outstanding GET and POST to finish."""
        self._pausing = True
        await self._paused.wait()
        if self._writer is not None:
            with contextlib.suppress(TransportClosed):
                await asyncio.shield(self._writer)

    def abort(self) -> None:
        """Drop every HTTP connection of this client; no close packet is sent."""
        self._end("transport close")
        connector = self.http.connector
        if connector is not None:
            background(self._tasks, connector.close())

    async def close(self) -> None:
        with contextlib.suppress(TransportClosed):
            await asyncio.wait_for(self.send(wire.EIO_CLOSE), 1.0)
        self._end("io client disconnect")
        await self.http.close()


class UpgradeTransport:
    """Long-polling first, then upgraded to a WebSocket as the official client does.

    The probe (`2probe`/`3probe`) runs beside the polling; once it answers, polling
    is paused (the server releases the outstanding GET with a noop), `5` is sent on
    the WebSocket and every later packet goes over it. `upgraded` tells which
    transport carries the connection now.
    """

    name = "upgrade"

    def __init__(self, polling: PollingTransport, http: aiohttp.ClientSession) -> None:
        self.polling = polling
        self.http = http
        self.info = polling.info
        self.ws: WebSocketTransport | None = None
        self.upgraded = False
        self._aborted = False
        self._upgrader: asyncio.Future[None] | None = None

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> UpgradeTransport:
        return cls(await PollingTransport.open(base), http)

    async def run(self, on_packet: OnPacket) -> str:
        upgrader = self._upgrader = asyncio.ensure_future(self._upgrade())
        try:
            reason = await self.polling.run(on_packet)
            if reason == "upgraded":
                await upgrader
            if reason != "upgraded" or self.ws is None:
                return "transport error" if reason == "upgraded" else reason
            if self._aborted:
                self.ws.abort()
            return await self.ws.run(on_packet)
        finally:
            upgrader.cancel()
            with contextlib.suppress(BaseException):
                await upgrader
            await self.polling.http.close()

    async def _upgrade(self) -> None:
        if "websocket" not in self.info.upgrades:
            return
        try:
            ws = await self.http.ws_connect(
                _ws_url(_eio_url(self.polling.base, "websocket", self.info.sid)),
                autoping=True, max_msg_size=0,
            )
        except (aiohttp.ClientError, OSError):
            return
        try:
            await ws.send_str(wire.EIO_PING + "probe")
            msg = await asyncio.wait_for(ws.receive(), self.info.ping_timeout)
            if msg.type is not aiohttp.WSMsgType.TEXT or msg.data != wire.EIO_PONG + "probe":
                await ws.close()
                return
            # The server is silent on this socket until the upgrade packet: re-plumb now.
            upgraded = WebSocketTransport(ws, self.info)
            await self.polling.pause()
            await ws.send_str(wire.EIO_UPGRADE)
        except (aiohttp.ClientError, OSError, TimeoutError):
            await ws.close()
            return
        self.ws = upgraded
        self.upgraded = True

    async def send(self, packet: str) -> None:
        if self.polling._pausing and self._upgrader is not None:
            await asyncio.shield(self._upgrader)  # the official client holds writes too
        if self.upgraded and self.ws is not None:
            await self.ws.send(packet)
        else:
            await self.polling.send(packet)

    def abort(self) -> None:
        self._aborted = True
        if self.ws is not None:
            self.ws.abort()
        self.polling.abort()

    async def close(self) -> None:
        if self.upgraded and self.ws is not None:
            await self.ws.close()
        else:
            await self.polling.close()


async def open_transport(kind: str, http: aiohttp.ClientSession, base: str) -> Transport:
    """Open an Engine.IO connection to `base` (http://host:port) over `kind`."""
    if kind == "websocket":
        return await WebSocketTransport.open(http, base)
    if kind == "polling":
        return await PollingTransport.open(base)
    if kind == "upgrade":
        return await UpgradeTransport.open(http, base)
    raise ValueError(f"unknown transport {kind!r}")
