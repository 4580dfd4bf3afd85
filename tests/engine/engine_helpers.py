"""Shared helpers of the engine tests: a real cluster with lean clients."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.processes import Supervisor
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.targets import load_target

KNOBS = {"ping_interval": 1.0, "ping_timeout": 1.0, "busy_timeout": 0.2}


async def until(cond: Callable[[], bool], what: str, deadline: float = 10.0) -> None:
    """Wait for a condition, failing with `what` after the deadline."""
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {deadline}s waiting for {what}")
        await asyncio.sleep(0.01)


@dataclass
class Env:
    cluster: Cluster
    history: History
    clients: list[LeanClient]

    def events(self, op: str | None = None, **match: Any) -> list[dict[str, Any]]:
        self.history.flush()
        assert self.history.path is not None
        lines = self.history.path.read_bytes().splitlines()
        out = [orjson.loads(line) for line in lines if line]
        return [e for e in out if (op is None or e["op"] == op)
                and all(e.get(k) == v for k, v in match.items())]


@pytest.fixture
async def cluster_env(tmp_path: Path) -> AsyncIterator[Env]:
    run = create_run_dir(tmp_path / "run")
    async with (
        Supervisor() as sup,
        History(run.history) as history,
        aiohttp.ClientSession() as http,
        Cluster(run, load_target(), "exactly-once", "off", groups=2, knobs=KNOBS,
                supervisor=sup, seed=1) as cluster,
    ):
        clients = [
            LeanClient(ClientConfig(id=f"c{i}", url=cluster.client_url(i),
                                    level="exactly-once", ack_timeout=0.5,
                                    reconnect_delay=0.05),
                       history, http=http, rng=random.Random(i))
            for i in range(2)
        ]
        try:
            for c in clients:
                await c.start()
            await until(lambda: all(c.connected for c in clients), "clients to connect")
            yield Env(cluster, history, clients)
        finally:
            for c in clients:
                await c.close()
