"""A small chat client for the server tests: python-socketio plus the CSR handshake.

python-socketio's client has no connection state recovery, so this one does what
the official client does on the wire: it remembers the `pid` of the CONNECT reply
and the last string offset of an event, and sends both in `auth` on reconnection.
Each `connect()` is a fresh transport; `drop()` closes it as `engine.close()` does.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import socketio
from socketio import packet


class _Client(socketio.AsyncClient):
    """Captures the CONNECT reply's data (python-socketio keeps only the sid)."""

    connect_data: dict[str, Any] | None = None

    async def _handle_connect(self, namespace: str | None, data: Any) -> None:
        self.connect_data = data if isinstance(data, dict) else None
        await super()._handle_connect(namespace, data)


class ChatClient:
    """One chat user across connections: its received messages, serverOffset, pid, offset."""

    def __init__(self, url: str, *, csr: bool = False, transport: str = "websocket") -> None:
        self.url = url
        self.csr = csr
        self.transport = transport
        self.received: list[tuple[Any, ...]] = []
        self.server_offset = 0
        self.pid: str | None = None
        self.offset: str | None = None
        self.recovered: list[bool] = []
        self.sid: str | None = None
        self.sio: _Client | None = None
        self.auth_override: Any = None

    def _auth(self) -> Any:
        if self.auth_override is not None:
            return self.auth_override
        auth: dict[str, Any] = {"serverOffset": self.server_offset}
        if self.csr and self.pid is not None:
            auth["pid"] = self.pid
            if self.offset is not None:
                auth["offset"] = self.offset
        return auth

    async def connect(self, timeout: float = 5.0) -> bool:
        """Open a new transport; returns whether the server recovered the session."""
        sio = _Client(reconnection=False)
        sio.on("chat message", self._on_message)
        self.sio = sio
        await sio.connect(
            self.url, auth=self._auth(), transports=[self.transport], wait_timeout=timeout
        )
        data = sio.connect_data or {}
        pid = data.get("pid")
        recovered = bool(self.csr and pid is not None and pid == self.pid)
        self.pid = pid if isinstance(pid, str) else None
        self.sid = data.get("sid")
        self.recovered.append(recovered)
        return recovered

    async def _on_message(self, *args: Any) -> None:
        self.received.append(args)
        if len(args) >= 2 and isinstance(args[1], int):
            self.server_offset = max(self.server_offset, args[1])
        if self.csr and args and isinstance(args[-1], str):
            self.offset = args[-1]

    async def send(self, *args: Any, timeout: float = 5.0) -> Any:
        """Emit `chat message` with an ack; returns the ack payload (None for a bare ack)."""
        assert self.sio is not None
        result = await self.sio.call(
            "chat message", args if len(args) != 1 else args[0], timeout=timeout
        )
        return result

    async def send_no_ack(self, *args: Any) -> None:
        assert self.sio is not None
        await self.sio.emit("chat message", args if len(args) != 1 else args[0])

    async def drop(self) -> None:
        """Close the transport, as `socket.io.engine.close()` does (the session is kept)."""
        if self.sio is not None:
            await self.sio.eio.disconnect(abort=True)
            await self.sio.disconnect()
            self.sio = None

    async def namespace_disconnect(self) -> None:
        """Send the namespace DISCONNECT packet (`socket.disconnect()`), keep the transport."""
        assert self.sio is not None
        await self.sio._send_packet(self.sio.packet_class(packet.DISCONNECT, namespace="/"))

    async def leave(self) -> None:
        """A namespace disconnect (`socket.disconnect()`): the session is not kept."""
        if self.sio is not None:
            await self.sio.disconnect()
            self.sio = None

    def contents(self) -> list[str]:
        return [args[0] for args in self.received]

    def offsets(self) -> list[int]:
        return [args[1] for args in self.received]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until `predicate()` holds, or fail with what was received."""
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise AssertionError(f"condition not met in {timeout}s; received {self.received}")
            await asyncio.sleep(0.01)

    async def wait_count(self, n: int, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: len(self.received) >= n, timeout)


def rows(db: Path) -> list[tuple[int, str | None, str]]:
    """The store's rows, read directly from the SQLite file (WAL included)."""
    with sqlite3.connect(db) as conn:
        return list(conn.execute("SELECT id, client_offset, content FROM messages ORDER BY id"))
