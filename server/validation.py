"""Bad input gets a precise answer: the checks on chat messages and handshakes.

Pure functions, so the rules can be tested without a socket and the handler
stays a few lines long.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAX_CLIENT_OFFSET = 128


@dataclass(frozen=True)
class Message:
    """A chat message that passed validation."""

    content: str
    client_offset: str | None


@dataclass(frozen=True)
class Rejection:
    """Why a message was refused for good; sent back as the ack payload."""

    code: str
    detail: str

    def as_ack(self) -> dict[str, str]:
        return {"error": self.code, "detail": self.detail}


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def validate_message(
    args: Sequence[Any], *, exactly_once: bool, max_content: int
) -> Message | Rejection:
    """Check the arguments of one `chat message` event (the ack callback excluded).

    Every level accepts `(content)` or `(content, client_offset)`; exactly-once
    requires the client offset, since without it a retry cannot be recognised.
    """
    if not args:
        return Rejection("missing_content", "expected (content[, client_offset]), got no argument")
    if len(args) > 2:
        return Rejection(
            "too_many_arguments", f"expected (content[, client_offset]), got {len(args)} arguments"
        )
    content = args[0]
    if not isinstance(content, str):
        return Rejection(
            "content_not_string", f"content must be a string, got {_type_name(content)}"
        )
    if not content:
        return Rejection("content_empty", "content must not be empty")
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > max_content:
        return Rejection(
            "content_too_large", f"content is {size} bytes, the limit is {max_content}"
        )
    client_offset = args[1] if len(args) == 2 else None
    if client_offset is None:
        if exactly_once:
            return Rejection("client_offset_missing", "exactly-once needs (content, client_offset)")
        return Message(content, None)
    if not isinstance(client_offset, str):
        return Rejection(
            "client_offset_not_string",
            f"client_offset must be a string, got {_type_name(client_offset)}",
        )
    if not client_offset:
        return Rejection("client_offset_empty", "client_offset must not be empty")
    if len(client_offset) > MAX_CLIENT_OFFSET:
        return Rejection(
            "client_offset_too_long",
            f"client_offset is {len(client_offset)} characters, the limit is {MAX_CLIENT_OFFSET}",
        )
    return Message(content, client_offset)


def parse_server_offset(auth: Any, max_id: int) -> tuple[int, str | None]:
    """The catch-up cursor from a handshake `auth`, and a complaint to log if any.

    Invalid offsets count as 0; one above the highest stored id (a reset store)
    also gets everything, as the chat contract says.
    """
    if auth is None:
        return 0, None
    if not isinstance(auth, dict):
        return 0, f"auth is {_type_name(auth)}, not an object; serverOffset taken as 0"
    if "serverOffset" not in auth or auth["serverOffset"] is None:
        return 0, None
    value = auth["serverOffset"]
    if isinstance(value, bool) or not isinstance(value, int):
        return 0, f"serverOffset {value!r} is not an integer; taken as 0"
    if value < 0:
        return 0, f"serverOffset {value} is negative; taken as 0"
    if value > max_id:
        return 0, f"serverOffset {value} is above the highest stored id {max_id}; taken as 0"
    return value, None
