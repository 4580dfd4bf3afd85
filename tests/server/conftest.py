"""Fixtures: the reference server as a real child process on 127.0.0.1, reaped afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from tests_server_argv import server_argv

from faultlab.harness.processes import Child, Supervisor

StartServer = Callable[..., Awaitable[Child]]


@pytest.fixture
async def supervisor() -> AsyncIterator[Supervisor]:
    async with Supervisor() as sup:
        yield sup


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "chat.db"


@pytest.fixture
def start_server(supervisor: Supervisor, db: Path, tmp_path: Path) -> StartServer:
    """Start `faultlab server` with the given extra arguments; waits for /healthz."""
    count = 0

    async def start(
        *args: str, env: dict[str, str] | None = None, path: Path | None = None
    ) -> Child:
        nonlocal count
        count += 1
        return await supervisor.spawn(
            f"server{count}",
            server_argv(path or db, *args),
            tmp_path / f"server{count}.log",
            env=env,
            ready_url="/healthz",
            deadline=20.0,
        )

    return start
