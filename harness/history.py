"""The append-only history (DESIGN §3.3, format 1): the one record of what happened.

Recording must be cheap enough for every receive of a large run, and a crash of the
harness must leave a readable prefix: lines are encoded with orjson into a buffer
that a background task flushes about every 100 ms, and on close.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import IO, Any, Self

import orjson

HISTORY_FORMAT = 1
OPS = frozenset(
    {
        "run_start", "session_start", "send", "attempt", "ack", "reject", "give_up",
        "recv", "show", "connect", "disconnect", "leave", "fault_start", "fault_end",
        "fault_fired", "quiesce_start", "quiesce_end",
    }
)


class History:
    """Writes history lines stamped with seconds since the run started (monotonic)."""

    def __init__(self, path: Path | None, *, flush_interval: float = 0.1) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self.t0 = time.monotonic()
        self.count = 0
        self._buffer: list[bytes] = []
        self._file: IO[bytes] | None = open(path, "ab") if path else None  # noqa: SIM115
        self._flusher: asyncio.Task[None] | None = None

    def now(self) -> float:
        """Seconds since the run started, the history's clock."""
        return time.monotonic() - self.t0

    def record(self, actor: str, op: str, **fields: Any) -> float:
        """Append one event; returns its timestamp."""
        t = time.monotonic() - self.t0
        self.count += 1
        if self._file is not None:
            self._buffer.append(
                orjson.dumps({"t": round(t, 6), "actor": actor, "op": op, **fields})
            )
        return t

    def flush(self) -> None:
        if self._buffer and self._file is not None:
            self._buffer.append(b"")
            self._file.write(b"\n".join(self._buffer))
            self._file.flush()
            self._buffer.clear()

    async def __aenter__(self) -> Self:
        self._flusher = asyncio.create_task(self._flush_periodically())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            self.flush()

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        with contextlib.suppress(ValueError):
            self.flush()
        if self._file is not None:
            self._file.close()
            self._file = None
