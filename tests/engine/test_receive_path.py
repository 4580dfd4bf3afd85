"""The lean client's receive path: text frames go from the socket's `data_received`
straight to the client (no `receive()` per frame), over websocket and after an upgrade,
and every receive is recorded as `recv` then `show` with one timestamp."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson
import pytest

from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.clients.transports import UpgradeTransport, WebSocketTransport
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.targets import load_target

KNOBS = {"ping_interval": 1.0, "ping_timeout": 1.0}


async def until(cond: Callable[[], bool], what: str, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        await asyncio.sleep(0.01)


def websocket_of(client: LeanClient) -> WebSocketTransport:
    transport = client._transport
    if isinstance(transport, UpgradeTransport):
        assert transport.ws is not None
        return transport.ws
    assert isinstance(transport, WebSocketTransport)
    return transport


@pytest.mark.parametrize("transport", ["websocket", "upgrade"])
async def test_frames_reach_the_client_directly_in_order(tmp_path: Path, transport: str) -> None:
    run = create_run_dir(tmp_path / "run")
    async with (
        Cluster(run, load_target(), "exactly-once", knobs=KNOBS) as cluster,
        History(run.history) as history,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        a, b = (LeanClient(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once",
                                        transport=transport), history, http=http,
                           rng=random.Random(i)) for i in range(2))
        try:
            for c in (a, b):
                await c.start()
            await until(lambda: a.carried_by == "websocket" == b.carried_by, "on websocket")
            direct = websocket_of(b)._direct
            assert direct is not None and direct.on_text is not None
            for n in range(20):
                await a.send(f"{transport}-{n}")
            await until(lambda: len(b.shown()) == 20 and a.pending() == 0, "all shown")
        finally:
            for c in (a, b):
                await c.close()
    lines = [orjson.loads(x) for x in run.history.read_bytes().splitlines()]
    got = [x for x in lines if x["actor"] == "c1" and x["op"] in ("recv", "show")]
    assert [x["content"] for x in got[::2]] == [f"{transport}-{n}" for n in range(20)]
    assert [x["op"] for x in got] == ["recv", "show"] * 20
    assert all(r["t"] == s["t"] and r["server_offset"] == s["server_offset"]
               for r, s in zip(got[::2], got[1::2], strict=True))
    offsets = [x["server_offset"] for x in got[::2]]
    assert offsets == sorted(offsets)


def test_record_receive_writes_recv_then_show_with_one_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history = History(path)
    t1 = history.record_receive("c1", "x", 7, "csr-1", True)
    t2 = history.record_receive("c1", "x", 7, None, False)
    history.close()
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    assert lines == [
        {"t": t1, "actor": "c1", "op": "recv", "content": "x", "server_offset": 7,
         "csr_offset": "csr-1"},
        {"t": t1, "actor": "c1", "op": "show", "content": "x", "server_offset": 7},
        {"t": t2, "actor": "c1", "op": "recv", "content": "x", "server_offset": 7,
         "csr_offset": None},
    ]
    assert history.count == 3 and t2 >= t1


def test_timestamps_have_at_most_six_decimals(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history = History(path)
    for _ in range(200):
        history.record("c1", "leave")
    history.close()
    stamps = [line.split(b'"t":')[1].split(b",")[0] for line in path.read_bytes().splitlines()]
    assert all(len(s.partition(b".")[2]) <= 6 for s in stamps)
    assert [float(s) for s in stamps] == sorted(float(s) for s in stamps)
