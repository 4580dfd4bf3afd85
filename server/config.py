"""The server's settings: one frozen value built by the CLI, read by every module."""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("at-most-once", "buffered", "at-least-once", "exactly-once")
RECOVERY_MODES = ("off", "memory", "durable")
SYNCHRONOUS_MODES = ("NORMAL", "FULL")


@dataclass(frozen=True)
class ServerConfig:
    """Every knob a scenario waits on is here, so the suite can run in seconds."""

    host: str = "127.0.0.1"
    port: int = 0
    db: str = "chat.db"
    delivery: str = "exactly-once"
    recovery: str = "off"
    ping_interval: float = 25.0
    ping_timeout: float = 20.0
    recovery_window: float = 120.0
    busy_timeout_ms: int = 5000
    max_content: int = 4096
    synchronous: str = "NORMAL"
    failpoints: str = ""
    mutation: str | None = None
    batch_max: int = 256

    @property
    def exactly_once(self) -> bool:
        return self.delivery == "exactly-once"

    @property
    def csr(self) -> bool:
        """Connection state recovery is on (memory or durable)."""
        return self.recovery != "off"
