"""Child processes that never outlive the harness.

Every server, proxy and helper that a scenario needs is a `Child` spawned by a
`Supervisor`. The supervisor reaps all of them when its block exits — normally, on
an exception, on cancellation (Ctrl-C) — and, as a last resort, an ``atexit`` hook
and the kernel's parent-death signal kill whatever is left, so no process and no
listening port survives a run.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import re
import signal
import sys
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Self

import aiohttp
import psutil

READY_LINE = re.compile(r"listening on (?P<url>https?://[\w.\-\[\]:]+)")
_PR_SET_PDEATHSIG = 1
_live_pids: set[int] = set()


class ChildFailed(RuntimeError):
    """A child exited early or never became ready; the message carries its log tail."""


def _die_with_parent() -> None:
    """Runs in the child between fork and exec: SIGKILL it if the harness dies."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


@atexit.register
def kill_leftovers() -> None:
    """SIGKILL the process group of every child still alive (the last resort)."""
    for pid in list(_live_pids):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)


class Child:
    """One child process, its log file and the URL it announced."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        ready_line: bool = True,
        deadline: float = 15.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.ready_path = ready_url
        self.ready_line = ready_line
        self.deadline = deadline
        self.url: str | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._announced: asyncio.Future[str] | None = None
        self._tail: deque[str] = deque(maxlen=40)
        self.paused = False

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def port(self) -> int | None:
        if self.url is None:
            return None
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self) -> Self:
        """Spawn the process and wait until it is ready (or raise `ChildFailed`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self._log.write(f"--- start {self.starts + 1}: {' '.join(self.argv)}\n".encode())
        self._log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(self.env or {})}
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        _live_pids.add(self.proc.pid)
        self.starts += 1
        self.paused = False
        self._announced = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._pump(self.proc, self._announced))
        try:
            await asyncio.wait_for(self._wait_ready(), self.deadline)
        except TimeoutError:
            await self.kill()
            raise ChildFailed(self._explain(f"not ready within {self.deadline:.1f}s")) from None
        except ChildFailed:
            await self.kill()
            raise
        return self

    async def _pump(self, proc: asyncio.subprocess.Process, announced: asyncio.Future[str]) -> None:
        """Copy the child's output into its log, noticing the 'listening on' line."""
        assert proc.stdout is not None and self._log is not None
        log = self._log
        async for raw in proc.stdout:
            log.write(raw)
            log.flush()
            line = raw.decode(errors="replace").rstrip()
            self._tail.append(line)
            if not announced.done() and (m := READY_LINE.search(line)):
                announced.set_result(m.group("url"))

    async def _wait_ready(self) -> None:
        assert self.proc is not None and self._announced is not None
        if self.ready_line:
            exited = asyncio.ensure_future(self.proc.wait())
            done, _ = await asyncio.wait(
                {self._announced, exited}, return_when=asyncio.FIRST_COMPLETED
            )
            if self._announced not in done:
                await self._drain()
                raise ChildFailed(self._explain(f"exited with code {self.proc.returncode}"))
            exited.cancel()
            self.url = self._announced.result()
        if self.ready_path is None:
            return
        url = self.ready_path if "://" in self.ready_path else f"{self.url}{self.ready_path}"
        async with aiohttp.ClientSession() as http:
            while True:
                if self.proc.returncode is not None:
                    await self._drain()
                    raise ChildFailed(self._explain(f"exited with code {self.proc.returncode}"))
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    async with http.get(url, timeout=aiohttp.ClientTimeout(total=1)) as r:
                        if r.status == 200:
                            return
                await asyncio.sleep(0.02)

    async def _drain(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(self._reader, 2.0)

    def _explain(self, what: str) -> str:
        tail = "\n".join(f"    {line}" for line in self._tail) or "    (no output)"
        return f"{self.name} {what}; log {self.log_path}, last lines:\n{tail}"

    def log_tail(self, n: int = 20) -> list[str]:
        return list(self._tail)[-n:]

    def send_signal(self, sig: int) -> None:
        """Signal the child's whole process group (it may have children of its own)."""
        if self.running:
            assert self.proc is not None
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    async def kill(self) -> None:
        """kill -9, then reap."""
        self.send_signal(signal.SIGKILL)
        await self._reap()

    async def terminate(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait for a graceful exit; SIGKILL after `timeout`."""
        if self.paused:
            await self.resume()
        self.send_signal(signal.SIGTERM)
        if self.proc is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), timeout)
        await self.kill()
        return self.proc.returncode if self.proc else None

    async def pause(self, deadline: float = 5.0) -> None:
        """SIGSTOP, returning once the kernel reports the process stopped."""
        self.send_signal(signal.SIGSTOP)
        self.paused = True
        assert self.proc is not None
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            try:
                if psutil.Process(self.proc.pid).status() == psutil.STATUS_STOPPED:
                    return
            except psutil.NoSuchProcess:
                return
            await asyncio.sleep(0.005)
        raise ChildFailed(self._explain(f"did not stop within {deadline:.1f}s of SIGSTOP"))

    async def resume(self) -> None:
        self.send_signal(signal.SIGCONT)
        self.paused = False

    async def restart(self, argv: Sequence[str] | None = None) -> Self:
        """Stop (if running) and start again; on the same port when one was announced."""
        if self.running:
            await self.kill()
        if argv is not None:
            self.argv = list(argv)
        elif self.port is not None:
            self.argv = _pin_port(self.argv, self.port)
        return await self.start()

    async def wait_exit(self, timeout: float) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        await self._reap()
        return code

    async def _reap(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGCONT)
            self.send_signal(signal.SIGKILL)
        await self.proc.wait()
        # the process group may hold grandchildren that outlive the leader
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        _live_pids.discard(self.proc.pid)
        await self._drain()
        if self._log is not None and not self._log.closed:
            self._log.write(f"--- exit {self.proc.returncode} at {time.time():.3f}\n".encode())
            self._log.close()


class Supervisor:
    """Owns a set of children and reaps every one of them when the block exits."""

    def __init__(self) -> None:
        self.children: list[Child] = []

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def spawn(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        ready_url: str | None = None,
        ready_line: bool = True,
        deadline: float = 15.0,
    ) -> Child:
        """Start a child and wait until it is ready; it is reaped with the supervisor.

        `ready_url` is a path (``/healthz``) under the announced URL, or a full URL.
        """
        child = Child(
            name, argv, log_path, env=env, ready_url=ready_url, ready_line=ready_line,
            deadline=deadline,
        )
        self.children.append(child)
        await child.start()
        return child

    async def close(self) -> None:
        results = await asyncio.gather(
            *(asyncio.shield(c.kill()) for c in self.children), return_exceptions=True
        )
        for child, result in zip(self.children, results, strict=True):
            if isinstance(result, BaseException):
                print(f"faultlab: could not reap {child.name}: {result}", file=sys.stderr)


def _pin_port(argv: list[str], port: int) -> list[str]:
    """Replace `--port 0` by the port the first start announced."""
    out = list(argv)
    for i, arg in enumerate(out[:-1]):
        if arg == "--port" and out[i + 1] == "0":
            out[i + 1] = str(port)
    return out


def faultlab_argv(*args: str) -> list[str]:
    """The command line that runs `faultlab ARGS` with this interpreter."""
    return [sys.executable, "-m", "faultlab", *args]
