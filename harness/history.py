"""The append-only history (DESIGN §3.3, format 1): the one record of what happened.

Recording must be cheap enough for every receive of a large run, and a crash of the
harness must leave a readable prefix: each line is encoded with orjson straight into
the file's fixed write buffer, which a background task flushes about every 100 ms,
and on close. The buffer is allocated once: keeping thousands of encoded lines
alive between flushes costs the process a page fault per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
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
WRITE_BUFFER = 1 << 20  # bytes; far above what 100 ms of a large run records
_dumps = orjson.dumps
_join = b"".join
_LINE = orjson.OPT_APPEND_NEWLINE
_clock_ns = time.monotonic_ns


class History:
    """Writes history lines stamped with seconds since the run started (monotonic).

    `t` is a float with at most six decimals (whole microseconds, truncated): cheaper
    than `round(t, 6)` and the same text.
    """

    def __init__(self, path: Path | None, *, flush_interval: float = 0.1) -> None:
        self.path = path
        self.flush_interval = flush_interval
        self._t0_ns = _clock_ns()
        self.t0 = self._t0_ns / 1e9
        self.count = 0
        self._file: IO[bytes] | None = (
            open(path, "ab", buffering=WRITE_BUFFER) if path else None  # noqa: SIM115
        )
        self._write: Callable[[bytes], object] | None = (
            self._file.write if self._file is not None else None
        )
        self._flusher: asyncio.Task[None] | None = None
        self._actors: dict[str, bytes] = {}  # actor -> b',"actor":"<actor>"'

    def now(self) -> float:
        """Seconds since the run started, the history's clock."""
        return (_clock_ns() - self._t0_ns) / 1e9

    def record(self, actor: str, op: str, **fields: Any) -> float:
        """Append one event; returns its timestamp."""
        t = (_clock_ns() - self._t0_ns) // 1000 / 1e6
        self.count += 1
        if self._write is not None:
            self._write(_dumps({"t": t, "actor": actor, "op": op, **fields}, option=_LINE))
        return t

    def record_receive(self, actor: str, content: Any, server_offset: Any,
                       csr_offset: Any, shown: bool) -> float:
        """`recv`, then `show` if the receive policy displayed it (`record_received`)."""
        return self.record_received(actor, receive_tails(content, server_offset, csr_offset),
                                    shown)

    def record_received(self, actor: str, tails: tuple[bytes, bytes], shown: bool) -> float:
        """`recv`, then `show` if shown, from the message's `receive_tails`: the hot path of
        a run, so one call, one clock read and one write for both lines. Every client of
        a broadcast receives the same message, so a client encodes it once for all
        (`LeanClient`); per receive only `t` is encoded, and joined with the actor's
        encoded name and the two tails: the same bytes as encoding the two dicts."""
        t = (_clock_ns() - self._t0_ns) // 1000 / 1e6
        write = self._write
        if write is not None:
            actor_ = self._actors.get(actor)
            if actor_ is None:
                actor_ = self._actors[actor] = b',"actor":' + _dumps(actor)
            t_ = _dumps(t)
            if shown:
                write(_join((b'{"t":', t_, actor_, tails[0], b'{"t":', t_, actor_, tails[1])))
            else:
                write(_join((b'{"t":', t_, actor_, tails[0])))
        self.count += 2 if shown else 1
        return t

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

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
        self._write = None
        if self._file is not None:
            with contextlib.suppress(ValueError):
                self._file.close()
            self._file = None


def receive_tails(content: Any, server_offset: Any, csr_offset: Any) -> tuple[bytes, bytes]:
    """What follows `"actor":...` in a message's `recv` line and in its `show` line, in
    format 1's key order."""
    content_, offset_ = _dumps(content), _dumps(server_offset)
    return (b',"op":"recv","content":' + content_ + b',"server_offset":' + offset_
            + b',"csr_offset":' + _dumps(csr_offset) + b"}\n",
            b',"op":"show","content":' + content_ + b',"server_offset":' + offset_ + b"}\n")
