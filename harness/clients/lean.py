"""The lean simulated chat client: Engine.IO v4 + Socket.IO v5 spoken directly.

One object per chat user. It keeps a connection up (reconnecting after
`reconnect_delay` on any loss that is not a leave or a close), sends through the
delivery profile of its level, receives through its receive policy, and records
every action and observation in the history (DESIGN §3.3). The handshake `auth` is
rebuilt on every (re)connection: `serverOffset`, and with recovery `pid` + `offset`
exactly as socket.io-client v4.6+ sends them.

It exists because python-socketio's `AsyncClient` costs about 110 µs of CPU per
received event; here a received broadcast is one frame, one `orjson.loads` and two
history records.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import deque
from dataclasses import dataclass
from typing import Any, NamedTuple

import aiohttp
import orjson

from faultlab.harness.clients import wire
from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.profiles import profile
from faultlab.harness.clients.receive import ReceivePolicy, policy
from faultlab.harness.clients.transports import (
    Transport,
    TransportClosed,
    UpgradeTransport,
    background,
    open_transport,
)
from faultlab.harness.history import History, receive_tails

log = logging.getLogger(__name__)
EVENT = "chat message"
_CONNECT_ERRORS = (OSError, aiohttp.ClientError, TimeoutError, wire.ProtocolError,
                   TransportClosed)


@dataclass
class Message:
    msg: str
    content: str
    client_offset: str | None
    attempts: int = 0


class LeanClient:
    """A simulated chat user on the lean wire client (implements `ChatClient`)."""

    def __init__(
        self,
        config: ClientConfig,
        history: History,
        *,
        http: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.history = history
        self.profile = profile(config.level)
        self.connected = False
        self.left = False
        self.sid: str | None = None
        self.connects = 0
        self._http = http
        self._own_http = http is None
        self._rng = rng or random.Random()
        self._record = history.record
        self._record_received = history.record_received
        self._actor = config.id
        self._policy: ReceivePolicy = policy(config.receive)
        self._recovery = config.recovery != "off"
        self._pid: str | None = None
        self._last_offset: str | None = None
        self._last_sid: str | None = None
        self._page_id = ""
        self._counter = 0
        self._msg_seq = 0
        self._outbox: deque[Message] = deque()
        self._wake = asyncio.Event()
        self._online = asyncio.Event()
        self._acks: dict[int, asyncio.Future[list[object] | None]] = {}
        self._next_ack = 0
        self._lost: asyncio.Future[None] | None = None
        self._transport: Transport | None = None
        self._early: list[str] = []
        self._reason: str | None = None
        self._offline_until = 0.0
        self._runner: asyncio.Task[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._connect_timer: asyncio.TimerHandle | None = None
        self._ended = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- the ChatClient interface -------------------------------------------------

    async def start(self) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._new_session(0)
        self._runner = asyncio.create_task(self._maintain())

    async def send(self, content: str) -> str:
        if self._ended:
            raise RuntimeError(f"{self._actor} has ended; it cannot send")
        self._msg_seq += 1
        msg = f"{self._actor}-m{self._msg_seq}"
        offset = self._client_offset() if self.profile.unique_offset else None
        self._record(self._actor, "send", msg=msg, content=content, client_offset=offset)
        self._outbox.append(Message(msg, content, offset))
        self._wake.set()
        return msg

    async def drop_transport(self) -> None:
        if self._transport is not None:
            self._reason = "drop"
            self._transport.abort()

    async def go_offline(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        self._offline_until = loop.time() + seconds
        await self._stop_connection("offline")
        if not self._ended:
            self._runner = asyncio.create_task(self._maintain())

    async def refresh(self, persist_offset: bool) -> None:
        """A new page: the in-memory outbox and recovery state are gone."""
        if self._ended:
            return
        await self._stop_connection("refresh")
        await self._stop_sender("refresh")
        kept = self._policy.server_offset
        self._new_session(kept if persist_offset and type(kept) is int and kept > 0 else 0)
        self._runner = asyncio.create_task(self._maintain(immediately=True))

    async def leave(self) -> None:
        if self._ended:
            return
        await self._end("leave")
        self.left = True
        self._record(self._actor, "leave")

    async def close(self) -> None:
        if not self._ended:
            await self._end("closed")

    def pending(self) -> int:
        return len(self._outbox)

    def shown(self) -> set[int]:
        return self._policy.shown

    @property
    def resume_from(self) -> int:
        return self._policy.resume_from

    @property
    def carried_by(self) -> str | None:
        """The transport carrying the connection now (`upgrade` ends up on websocket)."""
        transport = self._transport
        if transport is None:
            return None
        if isinstance(transport, UpgradeTransport):
            return "websocket" if transport.upgraded else "polling"
        return transport.name

    # -- display sessions and sending ---------------------------------------------

    def _new_session(self, resume_from: int) -> None:
        self._policy = policy(self.config.receive, resume_from)
        self._pid = self._last_offset = self._last_sid = None
        self._page_id = f"{self._rng.getrandbits(64):016x}"
        self._counter = 0
        self._record(self._actor, "session_start", resume_from=resume_from)
        self._sender = asyncio.create_task(self._send_loop())

    def _client_offset(self) -> str:
        if self.config.offsets == "random":
            return f"{self._rng.getrandbits(128):032x}"
        base = self.sid or self._last_sid or self._page_id
        offset = f"{base}-{self._counter}"
        self._counter += 1
        return offset

    async def _send_loop(self) -> None:
        """One message at a time, in order: the head of the outbox until it is settled."""
        outbox, record, actor, prof = self._outbox, self._record, self._actor, self.profile
        while True:
            while not outbox:
                self._wake.clear()
                await self._wake.wait()
            m = outbox[0]
            if not prof.buffers and not self.connected:
                outbox.popleft()
                record(actor, "give_up", msg=m.msg, reason="offline")
                continue
            await self._online.wait()
            if not prof.acks:
                m.attempts = 1
                record(actor, "attempt", msg=m.msg, n=1)
                with contextlib.suppress(TransportClosed):
                    await self._emit(m, None)
                outbox.popleft()
                continue
            outcome = await self._attempt_with_ack(m)
            if outcome == "retry":
                if self.config.retries is not None and m.attempts > self.config.retries:
                    outbox.popleft()
                    record(actor, "give_up", msg=m.msg, reason="retries")
                continue
            outbox.popleft()

    async def _attempt_with_ack(self, m: Message) -> str:
        """Send once and wait for the ack, the ack timeout or the connection's end.

        The waiter is the ack future itself: the timeout and the connection's end
        settle it with None (cheaper per send than `asyncio.wait` over two futures).
        """
        lost = self._lost
        self._next_ack += 1
        ack_id = self._next_ack
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[list[object] | None] = loop.create_future()
        self._acks[ack_id] = fut
        m.attempts += 1
        self._record(self._actor, "attempt", msg=m.msg, n=m.attempts)
        timer: asyncio.TimerHandle | None = None
        on_lost = functools.partial(_no_ack, fut)
        try:
            await self._emit(m, ack_id)
            timer = loop.call_later(self.config.ack_timeout, _no_ack, fut)
            if lost is not None:
                lost.add_done_callback(on_lost)
            args = await fut
        except TransportClosed:
            # The transport is closing but its reader has not noticed yet: let the
            # connection end before retrying, or the retry loop spins without yielding.
            if lost is not None and not lost.done():
                await asyncio.wait({lost}, timeout=self.config.ack_timeout)
            args = None
        finally:
            self._acks.pop(ack_id, None)
            if timer is not None:
                timer.cancel()
            if lost is not None:
                lost.remove_done_callback(on_lost)
        if args is None:
            return "retry"
        first = args[0] if args else None
        if isinstance(first, dict) and "error" in first:
            self._record(self._actor, "reject", msg=m.msg, error=first["error"])
        else:
            self._record(self._actor, "ack", msg=m.msg)
        return "settled"

    async def _emit(self, m: Message, ack_id: int | None) -> None:
        transport = self._transport
        if transport is None:
            raise TransportClosed("not connected")
        args: list[object] = [EVENT, m.content]
        if self.profile.sends_offset:
            args.append(m.client_offset)
        await transport.send(wire.event_packet(args, ack_id))

    async def _stop_sender(self, reason: str) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
            self._sender = None
        while self._outbox:
            m = self._outbox.popleft()
            self._record(self._actor, "give_up", msg=m.msg, reason=reason)

    # -- the connection -------------------------------------------------------------

    async def _maintain(self, immediately: bool = True) -> None:
        """Connect, serve, and reconnect after `reconnect_delay` until stopped."""
        loop = asyncio.get_running_loop()
        delay = 0.0 if immediately else self.config.reconnect_delay
        while not self._ended:
            wait = max(delay, self._offline_until - loop.time())
            if wait > 0:
                await asyncio.sleep(wait)
            delay = self.config.reconnect_delay
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    transport = await open_transport(
                        self.config.transport, self._http, self.config.url)  # type: ignore[arg-type]
            except _CONNECT_ERRORS as exc:
                log.debug("%s: connection attempt failed: %s", self._actor, exc)
                continue
            await self._serve(transport)

    async def _serve(self, transport: Transport) -> None:
        loop = asyncio.get_running_loop()
        self._transport = transport
        self._reason = None
        self._early = []
        self._lost = loop.create_future()
        self._reset_ping_timer()
        self._connect_timer = loop.call_later(self.config.connect_timeout, self._connect_late)
        reason = "transport error"
        try:
            await transport.send(wire.connect_packet(self._auth()))
            reason = await transport.run(self._on_packet)
        except TransportClosed:
            pass
        except asyncio.CancelledError:
            transport.abort()
            raise
        finally:
            self._connection_ended(self._reason or reason)

    def _connection_ended(self, reason: str) -> None:
        for timer in (self._ping_timer, self._connect_timer):
            if timer is not None:
                timer.cancel()
        self._ping_timer = self._connect_timer = None
        self._transport = None
        self._online.clear()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        if self.connected:
            self.connected = False
            self._last_sid = self.sid
            self.sid = None
            self._record(self._actor, "disconnect", reason=reason)

    async def _stop_connection(self, reason: str) -> None:
        """Cut the connection without a goodbye and stop reconnecting."""
        self._reason = reason
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner

    async def _end(self, reason: str) -> None:
        """Leave or close: give up what is pending, say goodbye, stop everything."""
        self._ended = True
        await self._stop_sender(reason)
        transport = self._transport
        if transport is not None and self.connected:
            with contextlib.suppress(TransportClosed):
                await asyncio.wait_for(transport.send("41"), 1.0)
            self._reason = "io client disconnect"
            await transport.close()
        await self._stop_connection(self._reason or "io client disconnect")
        if self._own_http and self._http is not None:
            await self._http.close()

    def _auth(self) -> dict[str, object]:
        auth: dict[str, object] = {"serverOffset": self._policy.server_offset}
        if self._recovery and self._pid is not None:
            head: dict[str, object] = {"pid": self._pid}
            if self._last_offset is not None:
                head["offset"] = self._last_offset
            auth = {**head, **auth}
        return auth

    def _reset_ping_timer(self) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        info = transport.info
        self._ping_timer = asyncio.get_running_loop().call_later(
            info.ping_interval + info.ping_timeout, self._cut, "ping timeout")

    def _connect_late(self) -> None:
        if not self.connected:
            self._cut("connect timeout")

    def _cut(self, reason: str) -> None:
        if self._transport is not None:
            self._reason = self._reason or reason
            self._transport.abort()

    def _pong(self) -> None:
        transport = self._transport
        if transport is not None:
            background(self._tasks, self._send_quietly(transport, wire.EIO_PONG))

    @staticmethod
    async def _send_quietly(transport: Transport, packet: str) -> None:
        with contextlib.suppress(TransportClosed):
            await transport.send(packet)

    # -- received packets (the hot path) ---------------------------------------------

    def _on_packet(self, packet: str) -> None:
        event = _last_event
        if packet == event.packet and self.connected:  # what the last client received
            self._received(event)
        elif packet.startswith("42"):
            if self.connected:
                self._on_event(packet)
            else:
                self._early.append(packet)
        elif packet.startswith("43"):
            self._on_ack(packet[2:])
        elif packet == wire.EIO_PING:
            self._reset_ping_timer()
            self._pong()
        elif packet.startswith("40"):
            self._on_connect(packet[2:])
        elif packet.startswith("44"):
            log.info("%s: connection refused: %s", self._actor, packet[2:200])
            self._cut("connect error")
        elif packet.startswith("41"):
            self._cut("io server disconnect")
        elif packet == wire.EIO_CLOSE:
            self._cut("transport close")

    def _on_event(self, packet: str) -> None:
        event = _last_event
        if packet != event.packet:
            event = _decode(self._actor, packet)
            if event is None:
                return
        self._received(event)

    def _received(self, event: _Event) -> None:
        if self._recovery and self._pid is not None and event.last_str is not None:
            self._last_offset = event.last_str
        self._record_received(self._actor, event.tails, self._policy.accept(event.server_offset))

    def _on_ack(self, body: str) -> None:
        ack_id, rest = wire.split_id(body)
        fut = self._acks.get(ack_id) if ack_id is not None else None
        if fut is None or fut.done():
            return
        try:
            args = wire.parse_json(rest)
        except wire.ProtocolError as exc:
            log.warning("%s: %s", self._actor, exc)
            return
        fut.set_result(args if isinstance(args, list) else [args])

    def _on_connect(self, body: str) -> None:
        try:
            data = wire.parse_json(body) or {}
            sid = data["sid"]
        except (wire.ProtocolError, KeyError, TypeError):
            log.warning("%s: bad CONNECT reply %r", self._actor, body[:200])
            self._cut("transport error")
            return
        pid = data.get("pid")
        recovered = bool(self._recovery and pid and pid == self._pid)
        if self._recovery:
            self._pid = pid if isinstance(pid, str) else None
        if self._connect_timer is not None:
            self._connect_timer.cancel()
            self._connect_timer = None
        self.sid = sid
        self.connected = True
        self.connects += 1
        self._record(self._actor, "connect", sid=sid, recovered=recovered)
        early, self._early = self._early, []
        for packet in early:
            self._on_event(packet)
        self._online.set()


def _no_ack(fut: asyncio.Future[list[object] | None], *_: object) -> None:
    """The ack timeout or the connection's end: settle the waiter with no ack."""
    if not fut.done():
        fut.set_result(None)


class _Event(NamedTuple):
    """A chat message EVENT's arguments, decoded and encoded for the history once."""

    packet: str | None  # the Socket.IO packet, as received (`42[...]`)
    server_offset: Any
    last_str: str | None  # the last argument if a string: the recovery offset
    tails: tuple[bytes, bytes]  # `history.receive_tails`


def _decode(actor: str, packet: str) -> _Event | None:
    """Decode an EVENT's arguments; None (logged if not JSON) when it is not a chat message.

    Every client of a broadcast receives the same packet, one after another, so the
    last message decoded is kept (`_last_event`) and the next client that receives it
    reuses it: the arguments are parsed and encoded once per broadcast, not once per
    client.
    """
    global _last_event
    body = packet[2:]
    if body[:1] != "[":
        _, body = wire.split_id(body)
    try:
        args = _loads(body)
    except orjson.JSONDecodeError:
        if body:
            _log_bad_json(actor, body)
        return None
    if not isinstance(args, list) or not args or args[0] != EVENT:
        return None
    n = len(args)
    last = args[-1]
    server_offset = args[2] if n > 2 else None
    tails = receive_tails(args[1] if n > 1 else None, server_offset,
                          last if n >= 4 and type(last) is str else None)
    event = _last_event = _Event(packet, server_offset, last if type(last) is str else None, tails)
    return event


_last_event = _Event(None, None, None, (b"", b""))


def _log_bad_json(actor: str, body: str) -> None:
    """An EVENT whose arguments are not JSON is logged (with `wire`'s message) and dropped."""
    try:
        wire.parse_json(body)
    except wire.ProtocolError as exc:
        log.warning("%s: %s", actor, exc)


_loads = orjson.loads
