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
        self._receive_templates: dict[str, tuple[bytes, bytes]] = {}

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
        """`recv`, then `show` if the receive policy displayed it: the hot path of a run,
        so one call, one clock read and one write for both lines. The lines are an
        actor's byte templates (`_receive_templates`) filled with the JSON of four
        values: the same bytes as encoding the two dicts, at ~60 % of the cost (2.4 against
        4.0 µs per receive, `benchmarks/history_record.py`)."""
        t = (_clock_ns() - self._t0_ns) // 1000 / 1e6
        write = self._write
        if write is not None:
            templates = self._receive_templates.get(actor)
            if templates is None:
                templates = self._receive_templates[actor] = _receive_templates(actor)
            t_, content_, offset_ = _dumps(t), _dumps(content), _dumps(server_offset)
            if shown:
                write(templates[1] % (t_, content_, offset_, _dumps(csr_offset),
                                      t_, content_, offset_))
            else:
                write(templates[0] % (t_, content_, offset_, _dumps(csr_offset)))
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


def _receive_templates(actor: str) -> tuple[bytes, bytes]:
    """An actor's `recv` line, and its `recv` + `show` lines, in format 1's key order, with
    `%b` for `t`, `content`, `server_offset` (and `csr_offset` in `recv`)."""
    head = b'{"t":%b,"actor":' + _dumps(actor).replace(b"%", b"%%")
    recv = head + b',"op":"recv","content":%b,"server_offset":%b,"csr_offset":%b}\n'
    show = head + b',"op":"show","content":%b,"server_offset":%b}\n'
    return recv, recv + show
