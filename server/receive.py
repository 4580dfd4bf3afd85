"""Socket.IO events handled as they are read: no packet object, no task per event.

For every EVENT, python-socketio (after engine.io's task per message) decodes a
packet object and runs the handler in a task of its own, then encodes the ack as
another packet. At one message per batch those per-message costs are a large
part of the server's CPU. `Shortcut` parses a plain EVENT on "/" (`2[id][...]`)
as python-socketio would and offers it to a synchronous handler registered for
its name; the handler queues the work and acks later through the callback it is
given. Anything unusual (a namespace, binary, an over-long id, invalid JSON, a
socket not connected yet, an event without a quick handler) and anything the
handler declines takes python-socketio's path unchanged, so errors, logs and
acks there stay exactly as they were.

The JSON is read with orjson, which accepts a subset of what python-socketio's
`json.loads` accepts (no NaN or Infinity, no lone surrogates, no integer beyond
64 bits) and gives the same values for it; what orjson refuses is declined, so
python-socketio reads it as before.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import socketio
from engineio import packet as eio_packet

from faultlab.server.transport import DirectSocket, text_frame

log = logging.getLogger("faultlab.server.receive")

QuickHandler = Callable[[str, list[Any], "Ack | None"], bool]
"""`(sid, args, ack or None) -> taken`; must not block, and must not raise for bad input."""

NAMESPACE = "/"
MAX_ID_DIGITS = 18


class Shortcut:
    """The `transport.Shortcut` of a python-socketio server with quick handlers by event name."""

    def __init__(self, sio: socketio.AsyncServer, handlers: dict[str, QuickHandler]) -> None:
        self.sio = sio
        self.handlers = handlers
        self._sending: set[asyncio.Task[None]] = set()

    def __call__(self, eio_sid: str, text: str) -> bool:
        """Take the Socket.IO packet `text` (an EVENT: it starts with "2") or decline it."""
        end = len(text)
        i = 1
        while i < end and text[i].isdigit():
            i += 1
        if i >= end or text[i] != "[" or i > MAX_ID_DIGITS:
            return False
        sio = self.sio
        manager = sio.manager
        if eio_sid in sio._binary_packet:
            return False
        sid = manager.sid_from_eio_sid(eio_sid, NAMESPACE)
        if sid is None or not manager.is_connected(sid, NAMESPACE):
            return False
        try:
            data = orjson.loads(text[i:])
        except orjson.JSONDecodeError:
            return False
        if not data or type(data[0]) is not str:
            return False
        handler = self.handlers.get(data[0])
        if handler is None:
            return False
        ack = Ack(self, eio_sid, int(text[1:i])) if i > 1 else None
        try:
            return handler(sid, data[1:], ack)
        except Exception:
            log.exception("%r handler error", data[0])
            return True

    def send_queued(self, eio_sid: str, text: str) -> None:
        """Send `text` through engine.io's queue (the socket cannot take a direct write)."""
        task = asyncio.get_running_loop().create_task(self._send(eio_sid, text))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, eio_sid: str, text: str) -> None:
        try:
            await self.sio.eio.send_packet(eio_sid, eio_packet.Packet(eio_packet.MESSAGE, text[1:]))
        except Exception as exc:
            log.info("ack not sent to %s: %r", eio_sid, exc)


class Ack:
    """An event's empty ack (`43<id>[]`): its frame, and a way to send it on its own."""

    __slots__ = ("ack_id", "eio_sid", "frame", "shortcut")

    def __init__(self, shortcut: Shortcut, eio_sid: str, ack_id: int) -> None:
        self.shortcut = shortcut
        self.eio_sid = eio_sid
        self.ack_id = ack_id
        self.frame = text_frame(f"43{ack_id}[]")

    def send(self) -> None:
        """Write it at once when the socket can take it, else queue it."""
        shortcut = self.shortcut
        socket = shortcut.sio.eio.sockets.get(self.eio_sid)
        if socket is None:
            log.info("ack %d not sent: %s is gone", self.ack_id, self.eio_sid)
            return
        if isinstance(socket, DirectSocket) and socket.write_now(self.frame, time.time()):
            return
        shortcut.send_queued(self.eio_sid, f"43{self.ack_id}[]")
