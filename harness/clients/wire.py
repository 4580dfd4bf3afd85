"""Engine.IO v4 and Socket.IO v5 packets, as text, for the default namespace.

The lean client speaks the wire protocol directly so that a received broadcast
costs one frame, one prefix check and one `orjson.loads`. Only what a chat client
needs is here: open, ping/pong, upgrade, CONNECT/CONNECT_ERROR/DISCONNECT, EVENT and
ACK; binary packets are not used by the chat contract and are reported as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

# Engine.IO packet types (the first character of every Engine.IO packet)
EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP = "0123456"
# Socket.IO packet types (the character after the Engine.IO "4")
SIO_CONNECT, SIO_DISCONNECT, SIO_EVENT, SIO_ACK, SIO_CONNECT_ERROR = "01234"
RECORD_SEPARATOR = "\x1e"  # joins packets in one HTTP long-polling payload
EIO_PATH = "/socket.io/"


class ProtocolError(ValueError):
    """A packet that does not follow Engine.IO v4 / Socket.IO v5."""


@dataclass(frozen=True)
class OpenInfo:
    """The Engine.IO handshake: session id, upgrades and the server's ping timers."""

    sid: str
    upgrades: list[str]
    ping_interval: float  # seconds
    ping_timeout: float  # seconds


def parse_open(packet: str) -> OpenInfo:
    """Parse `0{"sid":..., "pingInterval": ms, ...}`."""
    if not packet.startswith(EIO_OPEN):
        raise ProtocolError(f"expected an Engine.IO open packet, got {packet[:40]!r}")
    try:
        data = orjson.loads(packet[1:])
        return OpenInfo(
            sid=data["sid"],
            upgrades=list(data.get("upgrades", [])),
            ping_interval=data["pingInterval"] / 1000,
            ping_timeout=data["pingTimeout"] / 1000,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ProtocolError(f"bad Engine.IO open packet {packet[:80]!r}: {exc}") from None


def connect_packet(auth: dict[str, Any]) -> str:
    """Socket.IO CONNECT to the default namespace with the handshake `auth`."""
    return "40" + orjson.dumps(auth).decode()


def event_packet(args: list[Any], ack_id: int | None = None) -> str:
    """Socket.IO EVENT: `42[...]`, or `42<id>[...]` when an ack is asked for."""
    body = orjson.dumps(args).decode()
    return f"42{body}" if ack_id is None else f"42{ack_id}{body}"


def split_id(body: str) -> tuple[int | None, str]:
    """Split the optional ack id off a Socket.IO EVENT/ACK body (`12[...]`)."""
    i = 0
    while i < len(body) and body[i].isdigit():
        i += 1
    return (int(body[:i]) if i else None), body[i:]


def parse_json(body: str) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError as exc:
        raise ProtocolError(f"bad JSON in Socket.IO packet {body[:80]!r}: {exc}") from None


def encode_payload(packets: list[str]) -> str:
    """An HTTP long-polling payload: packets joined by the record separator."""
    return RECORD_SEPARATOR.join(packets)


def decode_payload(payload: str) -> list[str]:
    return payload.split(RECORD_SEPARATOR) if payload else []
