"""The process supervisor: readiness, failure messages, signals, and no leaks."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import psutil
import pytest

from faultlab.harness.processes import ChildFailed, Supervisor

SERVER = textwrap.dedent(
    """
    import os, sys, signal
    from aiohttp import web

    async def health(request):
        return web.json_response({"pid": os.getpid()})

    async def main():
        app = web.Application()
        app.router.add_get("/healthz", health)
        runner = web.AppRunner(app)
        await runner.setup()
        port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        real = runner.addresses[0][1]
        print(f"toy listening on http://127.0.0.1:{real}", flush=True)
        import asyncio
        await asyncio.Event().wait()

    import asyncio
    asyncio.run(main())
    """
)


def toy(*args: str) -> list[str]:
    return [sys.executable, "-c", SERVER, *args]


async def test_ready_line_and_health(tmp_path: Path) -> None:
    async with Supervisor() as sup:
        child = await sup.spawn("toy", toy(), tmp_path / "toy.log", ready_url="/healthz")
        assert child.port and child.port > 0
        assert psutil.pid_exists(child.pid)
        pid = child.pid
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_early_exit_names_the_child_and_its_log(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import sys; print('boom: db locked'); sys.exit(3)"]
    async with Supervisor() as sup:
        with pytest.raises(ChildFailed, match=r"(?s)server exited with code 3.*boom: db locked"):
            await sup.spawn("server", argv, tmp_path / "s.log", deadline=5)


async def test_never_ready_is_killed_after_the_deadline(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "import time; print('starting', flush=True); time.sleep(60)"]
    async with Supervisor() as sup:
        with pytest.raises(ChildFailed, match=r"not ready within 0\.5s"):
            await sup.spawn("slow", argv, tmp_path / "slow.log", deadline=0.5)
        assert not sup.children[0].running


async def test_restart_keeps_the_port_and_pause_resume(tmp_path: Path) -> None:
    async with Supervisor() as sup:
        child = await sup.spawn("toy", [*toy(), "0"], tmp_path / "toy.log", ready_url="/healthz")
        port, first_pid = child.port, child.pid
        await child.pause()
        assert psutil.Process(child.pid).status() == psutil.STATUS_STOPPED
        await child.resume()
        await child.restart(argv=[*toy(), str(port)])
        assert child.port == port and child.pid != first_pid
        assert "--- start 2" in (tmp_path / "toy.log").read_text()


async def test_exception_in_block_reaps_everything(tmp_path: Path) -> None:
    pids: list[int] = []
    with pytest.raises(RuntimeError, match="scenario failed"):
        async with Supervisor() as sup:
            for i in range(3):
                pids.append((await sup.spawn(f"t{i}", toy(), tmp_path / f"{i}.log")).pid)
            raise RuntimeError("scenario failed")
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_terminate_is_graceful_then_forced(tmp_path: Path) -> None:
    stubborn = [
        sys.executable,
        "-c",
        "import signal,time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
        "print('x listening on http://127.0.0.1:1', flush=True); time.sleep(60)",
    ]
    async with Supervisor() as sup:
        child = await sup.spawn("stubborn", stubborn, tmp_path / "x.log")
        code = await child.terminate(timeout=0.3)
        assert code == -signal.SIGKILL
