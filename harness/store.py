"""The store from the harness's side: the snapshot the checker judges, and store faults.

The snapshot is read straight from the SQLite file (read-only, so it sees committed
WAL frames and never changes the file), because the checker must judge what is
stored, not what the server says it stored. The write-lock fault is a real second
process holding a write transaction, exactly what a backup job or a migration does
to a production chat; killing it releases the lock (the kernel drops its locks).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from faultlab.harness.processes import Child, ChildFailed, Supervisor
from faultlab.harness.targets import StoreSpec

LOCK_MODES = ("immediate", "exclusive")
HOLDING = "faultlab-store-lock holding"
ARMED = "faultlab-store-lock armed"
_STARTUP = 10.0  # seconds for the helper's interpreter to start, on a loaded machine


class StoreError(RuntimeError):
    """The store file cannot be read as the target describes it."""


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_rows(spec: StoreSpec, db: Path) -> list[dict[str, Any]]:
    """Every row as ``{"id", "client_offset", "content"}``, ordered by id."""
    if not db.exists():
        return []
    uri = f"file:{db}?mode=ro"
    query = (
        f"SELECT {_q(spec.id)}, {_q(spec.client_offset)}, {_q(spec.content)} "
        f"FROM {_q(spec.table)} ORDER BY {_q(spec.id)}"
    )
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        return [{"id": i, "client_offset": o, "content": c} for i, o, c in conn.execute(query)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise StoreError(f"{db}: cannot read table {spec.table!r}: {exc}") from None
    finally:
        conn.close()


def max_id(spec: StoreSpec, db: Path) -> int:
    """The highest stored id (0 for an empty or missing store): `run_start.store_max_id`."""
    rows = read_rows(spec, db)
    return rows[-1]["id"] if rows else 0


def write_snapshot(rows: list[dict[str, Any]], path: Path) -> int:
    """Write store.jsonl (DESIGN §3.3); returns the number of rows."""
    with path.open("wb") as out:
        out.writelines(orjson.dumps(row) + b"\n" for row in rows)
    return len(rows)


async def snapshot(spec: StoreSpec, db: Path, path: Path) -> list[dict[str, Any]]:
    """Read the store (off the event loop) and write store.jsonl."""
    rows = await asyncio.to_thread(read_rows, spec, db)
    await asyncio.to_thread(write_snapshot, rows, path)
    return rows


class StoreLock:
    """A lock helper started ahead of time: taking the lock is then a signal, not a
    process start, so a scheduled lock lands when the schedule says even on a loaded
    machine (an interpreter can take seconds to start there)."""

    def __init__(self, child: Child, log_path: Path, deadline: float) -> None:
        self.child = child
        self.log_path = log_path
        self.deadline = deadline

    @classmethod
    async def prepare(cls, supervisor: Supervisor, db: Path, log_path: Path, *,
                      mode: str = "immediate", deadline: float = 10.0) -> StoreLock:
        """Start the helper and wait until it is ready to lock (it holds nothing yet).
        `deadline` is its busy timeout: how long `acquire` waits for writers in flight."""
        if mode not in LOCK_MODES:
            raise ValueError(f"lock mode must be one of {', '.join(LOCK_MODES)}, not {mode!r}")
        argv = [sys.executable, "-m", "faultlab.harness.store", "lock", str(db), "--mode",
                mode, "--wait", str(deadline), "--armed"]
        child = await supervisor.spawn("store-lock", argv, log_path, ready_line=False)
        lock = cls(child, log_path, deadline)
        await lock._until(ARMED, _STARTUP, "did not start")
        return lock

    async def acquire(self) -> None:
        """Take the lock; returns once it is held."""
        self.child.send_signal(signal.SIGUSR1)
        await self._until(HOLDING, self.deadline + 1.0, f"did not get the lock within "
                          f"{self.deadline:.1f}s")

    async def release(self) -> None:
        await self.child.kill()

    async def _until(self, marker: str, seconds: float, what: str) -> None:
        end = time.monotonic() + seconds
        while not any(marker in line for line in self.child.log_tail(5)):
            failure = None if self.child.running else "exited before it held the lock"
            if failure is None and time.monotonic() > end:
                failure = what
            if failure is not None:
                await self.child.kill()
                tail = "\n".join(f"    {line}" for line in self.child.log_tail(10))
                raise ChildFailed(f"store-lock {failure}; log {self.log_path}, last lines:\n"
                                  f"{tail or '    (no output)'}")
            await asyncio.sleep(0.005)


def _hold(db: str, mode: str, wait: float, armed: bool) -> int:
    """The helper process: take the lock (on SIGUSR1 when armed), say so, hold it until
    SIGTERM/SIGINT ends us."""
    if armed:
        print(ARMED, flush=True)
        if signal.sigwait({signal.SIGUSR1, signal.SIGTERM, signal.SIGINT}) != signal.SIGUSR1:
            return 0
    conn = sqlite3.connect(db, timeout=wait, isolation_level=None)
    try:
        conn.execute(f"BEGIN {mode.upper()}")
    except sqlite3.OperationalError as exc:
        print(f"faultlab-store-lock: cannot lock {db}: {exc}", flush=True)
        return 1
    print(f"{HOLDING} {mode} lock on {db}", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    conn.rollback()
    conn.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faultlab.harness.store")
    sub = parser.add_subparsers(dest="cmd", required=True)
    lock = sub.add_parser("lock", help="hold a write lock on a SQLite file until signalled")
    lock.add_argument("db")
    lock.add_argument("--mode", choices=LOCK_MODES, default="immediate")
    lock.add_argument("--wait", type=float, default=10.0, help="busy timeout to get the lock")
    lock.add_argument("--armed", action="store_true",
                      help="start without the lock; take it on SIGUSR1")
    args = parser.parse_args(argv)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})
    return _hold(args.db, args.mode, args.wait, args.armed)


if __name__ == "__main__":
    sys.exit(main())
