"""The simulated chat client's interface: one object per chat user.

Every implementation (the lean Engine.IO client, the python-socketio one, the
official JS client driven from node) records its actions and observations in the
history (DESIGN §3.3) and gives the workload and the nemesis the same handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

LEVELS = ("at-most-once", "buffered", "at-least-once", "exactly-once")
RECEIVE_POLICIES = ("naive", "strict")
RECOVERY_MODES = ("off", "memory", "durable")
TRANSPORTS = ("websocket", "polling", "upgrade")
OFFSET_STYLES = ("sid-counter", "random")


@dataclass(frozen=True)
class ClientConfig:
    """What one simulated user does; every timer is a knob so scenarios run fast."""

    id: str  # "c7" — the history actor
    url: str  # http://127.0.0.1:PORT of this client's group proxy
    level: str  # at-most-once | buffered | at-least-once | exactly-once
    receive: str = "strict"  # naive | strict
    recovery: str = "off"  # off | memory | durable (whether to send pid/offset)
    transport: str = "websocket"  # websocket | polling | upgrade
    ack_timeout: float = 1.0
    retries: int | None = None  # None = retry forever (until the session ends)
    offsets: str = "sid-counter"  # or "random"
    reconnect_delay: float = 0.1  # reconnection delay (and max), a knob
    connect_timeout: float = 5.0  # one connection attempt (handshake + CONNECT)

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("level", self.level, LEVELS),
            ("receive", self.receive, RECEIVE_POLICIES),
            ("recovery", self.recovery, RECOVERY_MODES),
            ("transport", self.transport, TRANSPORTS),
            ("offsets", self.offsets, OFFSET_STYLES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
        if self.ack_timeout <= 0:
            raise ValueError(f"ack_timeout must be > 0, not {self.ack_timeout!r}")
        if self.retries is not None and self.retries < 0:
            raise ValueError(f"retries must be >= 0 or None, not {self.retries!r}")
        if self.reconnect_delay < 0:
            raise ValueError(f"reconnect_delay must be >= 0, not {self.reconnect_delay!r}")


@runtime_checkable
class ChatClient(Protocol):
    """One simulated chat user; every action and observation goes to the history."""

    config: ClientConfig
    connected: bool
    left: bool

    async def start(self) -> None:
        """First page load: `session_start(resume_from=0)`, then connect."""

    async def send(self, content: str) -> str:
        """Record `send` and deliver per the level; returns the message id."""

    async def drop_transport(self) -> None:
        """Abrupt close (no goodbye packet); the client reconnects by itself."""

    async def go_offline(self, seconds: float) -> None:
        """Disconnect, stay offline for `seconds`, reconnect; returns at once."""

    async def refresh(self, persist_offset: bool) -> None:
        """Page refresh: a new display session from the persisted offset or from 0."""

    async def leave(self) -> None:
        """Record `leave` and end for good; the client is not expected to converge."""

    def pending(self) -> int:
        """Messages in the outbox or in flight."""

    def shown(self) -> set[int]:
        """Server offsets shown in the current display session (plus <= resume_from)."""

    async def close(self) -> None:
        """End without recording `leave` (end of the run)."""
