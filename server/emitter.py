"""How committed rows go on the wire: `chat message (content, server_offset[, csr_offset])`.

One place that knows the event's shape, the broadcast room and the CSR offset
(the row id as a string: every packet this server sends is a row, so the row id
orders packets exactly as the official server's offsets do).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii

import socketio
from engineio import packet as eio_packet

from faultlab.server.recovery import EmitLog
from faultlab.server.transport import DirectSocket, text_frame

EVENT = "chat message"
LIVE = "faultlab:live"
"""The room of sockets whose catch-up is done; only the pipeline task adds to it."""

NAMESPACE = "/"

Row = tuple[int, str]


COMPACT = json.JSONEncoder(separators=(",", ":")).encode
"""python-socketio's `json.dumps(value, separators=(",", ":"))`, one encoder for all calls."""

_EVENT_JSON = encode_basestring_ascii(EVENT)


def _json(value: object) -> str:
    """`COMPACT(value)`, with the two types a row is made of done directly."""
    kind = type(value)
    if kind is str:
        return encode_basestring_ascii(value)
    if kind is int:
        return int.__repr__(value)  # type: ignore[arg-type]
    return COMPACT(value)


def event_text(args: tuple[object, ...]) -> str:
    """The engine.io text of a `chat message` event on "/", as socketio's packets encode it.

    engine.io MESSAGE ("4") + socketio EVENT ("2") + the compact JSON array, built
    without two packet objects per row and without the encoder's generic walk
    (strings through the json module's own ASCII quoting, as `json.dumps` does).
    """
    return "42[" + ",".join([_EVENT_JSON, *map(_json, args)]) + "]"


class Emitter:
    """Sends rows to the live room or to one socket, with the CSR offset when recovery is on."""

    def __init__(self, sio: socketio.AsyncServer, *, csr: bool, emit_log: EmitLog | None) -> None:
        self.sio = sio
        self.csr = csr
        self.emit_log = emit_log

    def _args(self, row_id: int, content: str) -> tuple[object, ...]:
        if self.csr:
            offset = str(row_id)
            if self.emit_log is not None:
                self.emit_log.note(offset, time.time())
            return (content, row_id, offset)
        return (content, row_id)

    async def broadcast(
        self,
        rows: Iterable[Row],
        skip_sid: str | None = None,
        replies: dict[str, bytes] | None = None,
    ) -> set[str]:
        """Emit rows to every live socket: one encoding per row, no task per recipient.

        python-socketio's room emit also encodes once but starts a task per
        recipient; writing the same frames to each socket in turn keeps the order
        and costs a fraction of that: websockets get all the rows in one write,
        without engine.io's queue when they can (see `transport`).

        `replies` maps an engine.io sid to framed packets (a sender's acks) that
        should follow its copy of the rows; where they fit in the same direct write
        they go with it, one send instead of two. Returns the engine.io sids whose
        replies were written.
        """
        replied: set[str] = set()
        manager = self.sio.manager
        eio = self.sio.eio
        sockets = eio.sockets
        texts = [event_text(self._args(row_id, content)) for row_id, content in rows]
        if not texts:
            return replied
        frames = b"".join(text_frame(text) for text in texts)
        messages: list[eio_packet.Packet] | None = None
        now = time.time()
        # the room's (sid, eio_sid) pairs copied at once, as `get_participants` copies
        # them, without a generator step per recipient
        live = manager.rooms.get(NAMESPACE, {}).get(LIVE)
        for sid, eio_sid in list(live.items()) if live is not None else ():
            if sid == skip_sid:
                continue
            socket = sockets.get(eio_sid)
            if isinstance(socket, DirectSocket):
                if replies and eio_sid in replies:
                    if socket.write_now(frames + replies[eio_sid], now):
                        replied.add(eio_sid)
                        continue
                elif socket.write_now(frames, now):
                    continue
            if messages is None:
                messages = [eio_packet.Packet(eio_packet.MESSAGE, text[1:]) for text in texts]
            if isinstance(socket, DirectSocket):
                await socket.send_frames(frames, messages)
            else:
                for message in messages:
                    await eio.send_packet(eio_sid, message)
        return replied

    async def send(self, sid: str, rows: Iterable[Row]) -> None:
        """Emit rows to one socket, in order."""
        for row_id, content in rows:
            await self.sio.emit(EVENT, self._args(row_id, content), to=sid)

    def present(self, sid: str) -> bool:
        """The socket still has a transport (connected or still connecting)."""
        return self.sio.manager.eio_sid_from_sid(sid, NAMESPACE) is not None

    def join_live(self, sid: str) -> None:
        self.sio.manager.basic_enter_room(sid, NAMESPACE, LIVE)

    def live_sids(self) -> list[str]:
        return [sid for sid, _ in self.sio.manager.get_participants(NAMESPACE, LIVE)]
