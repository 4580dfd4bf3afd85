"""Connection state recovery for python-socketio, wire-compatible with Socket.IO v4.6+.

python-socketio has no recovery of its own; this module adds it by subclassing
`AsyncServer` (handshake, session bookkeeping, disconnect reasons) and
`AsyncManager` (connecting a socket under a restored sid). What it does, as the
official server does (`reference/socketio-csr.md`):

- every socket gets a private session id (`pid`); the CONNECT reply is `{sid, pid}`;
- on the disconnect reasons the official server keeps sessions for, the session
  (sid, pid, rooms, data) is kept for the recovery window;
- a CONNECT with `auth.pid` (+ `auth.offset`) of a live session restores sid, rooms
  and data; the application replays the missed packets before the CONNECT reply;
- anything unknown, expired or malformed gives a plain new session, never an error.

Two differences on purpose: `DurableSessions` keeps sessions in the store so they
survive a restart or `kill -9` (socket.io #5413), and a client that received no
event (it sends `pid` without `offset`, #5538) is restored from the offset its
session started at. Which packets were missed and how to replay them is the
application's business (`offset_known`, and its connect handler).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import socketio
from bidict import ValueDuplicationError
from socketio import exceptions, packet

from faultlab.server.store import SavedSession, Store, StoreError

log = logging.getLogger("faultlab.server.recovery")

KEEP_REASONS = frozenset(
    {
        "transport error",
        "transport close",
        "forced close",
        "ping timeout",
        "server shutting down",
        "forced server close",
    }
)
"""Disconnect reasons after which the official server keeps the session."""

MAX_PID = 64
MAX_OFFSET = 64


@dataclass
class Session:
    """What a disconnected socket leaves behind, to be restored on reconnection."""

    pid: str
    sid: str
    rooms: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    origin: str = "0"
    disconnected_at: float | None = None


@dataclass(frozen=True)
class Restored:
    """A successful restore: the session and the offset to replay from."""

    session: Session
    offset: str


class Sessions(Protocol):
    """Where disconnected sessions wait for their client."""

    async def connected(self, session: Session) -> None: ...
    async def keep(self, session: Session) -> None: ...
    async def drop(self, pid: str) -> None: ...
    async def take(self, pid: str) -> Session | None: ...
    async def expire(self, before: float) -> None: ...


class MemorySessions:
    """Sessions in a dict, as the official in-memory adapter: gone with the process."""

    def __init__(self) -> None:
        self._kept: dict[str, Session] = {}

    async def connected(self, session: Session) -> None:
        return None

    async def keep(self, session: Session) -> None:
        self._kept[session.pid] = session

    async def drop(self, pid: str) -> None:
        self._kept.pop(pid, None)

    async def take(self, pid: str) -> Session | None:
        return self._kept.pop(pid, None)

    async def expire(self, before: float) -> None:
        for pid, session in list(self._kept.items()):
            if session.disconnected_at is not None and session.disconnected_at < before:
                del self._kept[pid]


class DurableSessions:
    """Sessions in the store: written at connect (so `kill -9` leaves them) and at disconnect."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @staticmethod
    def _saved(session: Session) -> SavedSession:
        return SavedSession(
            session.pid,
            session.sid,
            session.rooms,
            session.data,
            int(session.origin),
            session.disconnected_at,
        )

    async def connected(self, session: Session) -> None:
        await self.store.save_session(self._saved(session))

    async def keep(self, session: Session) -> None:
        await self.store.save_session(self._saved(session))

    async def drop(self, pid: str) -> None:
        await self.store.delete_session(pid)

    async def take(self, pid: str) -> Session | None:
        saved = await self.store.load_session(pid)
        if saved is None:
            return None
        await self.store.delete_session(pid)
        return Session(
            saved.pid,
            saved.sid,
            saved.rooms,
            saved.data,
            str(saved.start_cursor),
            saved.disconnected_at,
        )

    async def expire(self, before: float) -> None:
        await self.store.expire_sessions(before)

    async def adopt_orphans(self, now: float) -> None:
        """Sessions the previous process never closed (it crashed) start their window now."""
        await self.store.mark_orphans_disconnected(now)


class EmitLog:
    """Which offsets were emitted within the window: the official server's packet buffer.

    The official server can only restore from an offset still in its buffer;
    memory recovery keeps that limit (the packets themselves are replayed from the
    store, which holds the same content).
    """

    def __init__(self, window: float) -> None:
        self.window = window
        self._at: dict[str, float] = {}
        self._order: deque[tuple[float, str]] = deque()

    def note(self, offset: str, now: float) -> None:
        self._at[offset] = now
        self._order.append((now, offset))

    def known(self, offset: str, now: float) -> bool:
        at = self._at.get(offset)
        return at is not None and now - at <= self.window

    def expire(self, now: float) -> None:
        while self._order and now - self._order[0][0] > self.window:
            at, offset = self._order.popleft()
            if self._at.get(offset) == at:
                del self._at[offset]


class RecoveringManager(socketio.AsyncManager):
    """An `AsyncManager` that can connect a socket under a restored sid."""

    async def pre_connect(self, eio_sid: str, namespace: str, sid: str | None = None) -> str | None:
        if sid is None:
            return await super().pre_connect(eio_sid, namespace)
        if self.rooms.get(namespace, {}).get(None, {}).get(sid) is not None:
            return None
        try:
            self.basic_enter_room(sid, namespace, None, eio_sid=eio_sid)
        except ValueDuplicationError:
            return None
        self.basic_enter_room(sid, namespace, sid, eio_sid=eio_sid)
        self.pending_connect.setdefault(namespace, []).append(sid)
        return sid


class RecoveringServer(socketio.AsyncServer):
    """An `AsyncServer` with connection state recovery when `sessions` is given.

    The application's `connect` handler sees `recovered(sid)` (the offset to replay
    from, or None) and must replay before returning; it sets `set_origin(sid, offset)`
    for a new session. `after_connect` runs once the CONNECT reply is sent.
    """

    def __init__(
        self,
        *,
        sessions: Sessions | None,
        window: float,
        offset_known: Callable[[str], Awaitable[bool]] | None = None,
        unrestored_rooms: frozenset[str] = frozenset(),
        **kwargs: Any,
    ) -> None:
        super().__init__(client_manager=RecoveringManager(), **kwargs)
        self.sessions = sessions
        self.window = window
        self.offset_known = offset_known
        self.unrestored_rooms = unrestored_rooms
        self.after_connect: Callable[[str], Awaitable[None]] | None = None
        self.shutting_down = False
        self._pids: dict[str, str] = {}
        self._origins: dict[str, str] = {}
        self._data: dict[str, dict[str, Any]] = {}
        self._recovered: dict[str, str] = {}
        self._rooms_at_close: dict[str, list[str]] = {}

    # The application's view.

    def recovered(self, sid: str) -> str | None:
        """The offset to replay from when this connection restored a session."""
        return self._recovered.get(sid)

    def set_origin(self, sid: str, offset: str) -> None:
        """Where this session's stream starts: what a client that received nothing missed."""
        self._origins[sid] = offset

    def data(self, sid: str) -> dict[str, Any]:
        """The socket's `data`, restored with its session."""
        return self._data.setdefault(sid, {})

    def pid_of(self, sid: str) -> str | None:
        return self._pids.get(sid)

    # Handshake.

    async def _restore(self, auth: Any) -> Restored | None:
        if self.sessions is None or not isinstance(auth, dict):
            return None
        pid, offset = auth.get("pid"), auth.get("offset")
        if not isinstance(pid, str) or not 0 < len(pid) <= MAX_PID:
            if pid is not None:
                log.info("recovery: malformed pid %r; new session", pid)
            return None
        if offset is not None and (not isinstance(offset, str) or len(offset) > MAX_OFFSET):
            log.info("recovery: malformed offset %r; new session", offset)
            return None
        try:
            session = await self.sessions.take(pid)
        except StoreError as exc:
            log.error("recovery: reading session %s failed: %s; new session", pid, exc)
            return None
        if session is None:
            log.info("recovery: unknown pid %s; new session", pid)
            return None
        if session.disconnected_at is None or time.time() - session.disconnected_at > self.window:
            log.info("recovery: session %s expired; new session", pid)
            return None
        if offset is None:
            log.info(
                "recovery: pid %s without offset; replaying from its origin %s", pid, session.origin
            )
            return Restored(session, session.origin)
        if self.offset_known is not None and not await self.offset_known(offset):
            log.info("recovery: unknown offset %r for session %s; new session", offset, pid)
            return None
        return Restored(session, offset)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        namespace = namespace or "/"
        sid = None
        restored = None
        if (
            namespace in self.handlers
            or namespace in self.namespace_handlers
            or self.namespaces == "*"
            or namespace in self.namespaces
        ):
            restored = await self._restore(data)
            sid = await self.manager.pre_connect(
                eio_sid, namespace, sid=restored.session.sid if restored else None
            )
            if sid is None and restored is not None:
                restored = None
                sid = await self.manager.pre_connect(eio_sid, namespace)
        if sid is None:
            await self._send_packet(
                eio_sid,
                self.packet_class(
                    packet.CONNECT_ERROR, data="Unable to connect", namespace=namespace
                ),
            )
            return
        if self.sessions is not None:
            self._pids[sid] = restored.session.pid if restored else secrets.token_urlsafe(15)
        if restored is not None:
            for room in restored.session.rooms:
                if room not in self.unrestored_rooms and room != sid:
                    self.manager.basic_enter_room(sid, namespace, room)
            self._data[sid] = dict(restored.session.data)
            self._origins[sid] = restored.session.origin
            self._recovered[sid] = restored.offset
        fail_reason: Any = exceptions.ConnectionRefusedError().error_args
        try:
            success = await self._trigger_event(
                "connect", namespace, sid, self.environ.get(eio_sid, {}), data
            )
        except exceptions.ConnectionRefusedError as exc:
            fail_reason, success = exc.error_args, False
        except ConnectionRefusedError:
            fail_reason, success = {"message": "Connection refused by server"}, False
        finally:
            self._recovered.pop(sid, None)
        if success is False:
            await self._send_packet(
                eio_sid,
                self.packet_class(packet.CONNECT_ERROR, data=fail_reason, namespace=namespace),
            )
            await self.manager.disconnect(sid, namespace, ignore_queue=True)
            self._forget(sid)
            return
        reply = {"sid": sid}
        if sid in self._pids:
            reply["pid"] = self._pids[sid]
        await self._send_packet(
            eio_sid, self.packet_class(packet.CONNECT, reply, namespace=namespace)
        )
        await self.manager.connect(sid, namespace)
        if self.sessions is not None:
            await self._save(self.sessions.connected, sid, namespace, None)
        if self.after_connect is not None:
            await self.after_connect(sid)

    # Disconnection.

    async def _handle_eio_disconnect(self, eio_sid: str, reason: str) -> None:
        """Name engine-level closes as the official server does, so the right ones keep sessions."""
        if reason == self.reason.CLIENT_DISCONNECT:
            reason = "transport close"
        elif reason == self.reason.SERVER_DISCONNECT:
            reason = "server shutting down" if self.shutting_down else "forced server close"
        await super()._handle_eio_disconnect(eio_sid, reason)

    async def _trigger_event(self, event: str, namespace: str, *args: Any) -> Any:
        if event == "disconnect" and self.sessions is not None:
            sid = args[0]
            self._rooms_at_close[sid] = [
                r
                for r in self.manager.get_rooms(sid, namespace)
                if r != sid and r not in self.unrestored_rooms
            ]
        return await super()._trigger_event(event, namespace, *args)

    async def _handle_disconnect(
        self, eio_sid: str, namespace: str | None, reason: Any = None
    ) -> None:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        connected = self.manager.is_connected(sid, namespace)
        await super()._handle_disconnect(eio_sid, namespace, reason)
        if connected and sid is not None:
            await self._close_session(sid, namespace, reason or self.reason.CLIENT_DISCONNECT)

    async def disconnect(
        self, sid: str, namespace: str | None = None, ignore_queue: bool = False
    ) -> None:
        namespace = namespace or "/"
        connected = self.manager.is_connected(sid, namespace)
        await super().disconnect(sid, namespace, ignore_queue)
        if connected:
            await self._close_session(sid, namespace, "server namespace disconnect")

    async def _close_session(self, sid: str, namespace: str, reason: str) -> None:
        if self.sessions is None:
            self._forget(sid)
            return
        if reason in KEEP_REASONS:
            await self._save(self.sessions.keep, sid, namespace, time.time())
        else:
            pid = self._pids.get(sid)
            if pid is not None:
                with contextlib.suppress(StoreError):
                    await self.sessions.drop(pid)
        self._forget(sid)

    async def _save(
        self, how: Callable[[Session], Awaitable[None]], sid: str, namespace: str, at: float | None
    ) -> None:
        pid = self._pids.get(sid)
        if pid is None:
            return
        rooms = self._rooms_at_close.get(sid)
        if rooms is None:
            rooms = [
                r
                for r in self.manager.get_rooms(sid, namespace)
                if r != sid and r not in self.unrestored_rooms
            ]
        session = Session(
            pid, sid, rooms, dict(self._data.get(sid, {})), self._origins.get(sid, "0"), at
        )
        try:
            await how(session)
        except StoreError as exc:
            log.error("recovery: saving session %s failed: %s", pid, exc)

    def _forget(self, sid: str) -> None:
        for table in (self._pids, self._origins, self._data, self._recovered, self._rooms_at_close):
            table.pop(sid, None)

    async def expire_loop(self, every: float) -> None:
        """Drop sessions whose window has passed (the official server does it every 60 s)."""
        assert self.sessions is not None
        while True:
            await asyncio.sleep(every)
            try:
                await self.sessions.expire(time.time() - self.window)
            except StoreError as exc:
                log.error("recovery: expiring sessions failed: %s", exc)
