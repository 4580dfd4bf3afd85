"""The lean client's per-frame plumbing: socket bytes go straight into aiohttp's frame
parser (no `ResponseHandler.data_received` per read), reads are capped below glibc's
mmap threshold, and frames still arrive in order on both event loops; the `recv` and
`show` lines keep format 1's key order when their dicts are reused per actor."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
import orjson
import uvloop

from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.clients.transports import WebSocketTransport
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.targets import load_target


async def _exchange(tmp: Path) -> list[dict[str, object]]:
    run = create_run_dir(tmp / "run")
    async with (
        Cluster(run, load_target(), "exactly-once") as cluster,
        History(run.history) as history,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        a, b = (LeanClient(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once"),
                           history, http=http, rng=random.Random(i)) for i in range(2))
        try:
            for c in (a, b):
                await c.start()
            end = time.monotonic() + 10
            while not (a.connected and b.connected):
                assert time.monotonic() < end, "not connected within 10 s"
                await asyncio.sleep(0.01)
            transport = b._transport
            assert isinstance(transport, WebSocketTransport)
            response = transport.ws._response
            assert response is not None and response.connection is not None
            proto = response.connection.protocol
            assert proto is not None
            assert proto.data_received == transport.ws._parser.feed_data  # type: ignore[union-attr]
            assert getattr(proto.transport, "max_size", 0) <= 64 * 1024
            for n in range(30):
                await a.send(f"m{n}")
            while len(b.shown()) < 30 or a.pending():
                assert time.monotonic() < end + 20, "not all shown within 30 s"
                await asyncio.sleep(0.01)
        finally:
            for c in (a, b):
                await c.close()
    return [orjson.loads(x) for x in run.history.read_bytes().splitlines()]


def _check(lines: list[dict[str, object]]) -> None:
    got = [x["content"] for x in lines if x["actor"] == "c1" and x["op"] == "show"]
    assert got == [f"m{n}" for n in range(30)]


def test_frames_go_straight_to_the_parser_on_asyncio(tmp_path: Path) -> None:
    _check(asyncio.run(_exchange(tmp_path)))


def test_frames_go_straight_to_the_parser_on_uvloop(tmp_path: Path) -> None:
    _check(uvloop.run(_exchange(tmp_path)))


def test_reused_receive_dicts_keep_format_1_bytes(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    history = History(path)
    history.record_receive("c1", {"a": [1]}, 5, None, True)
    history.record_receive("c2", "y", "x", "o-1", False)
    history.record_receive("c1", "z", 6, "o-2", True)
    history.close()
    raw = [line.split(b",", 1)[1] for line in path.read_bytes().splitlines()]
    assert raw == [
        b'"actor":"c1","op":"recv","content":{"a":[1]},"server_offset":5,"csr_offset":null}',
        b'"actor":"c1","op":"show","content":{"a":[1]},"server_offset":5}',
        b'"actor":"c2","op":"recv","content":"y","server_offset":"x","csr_offset":"o-1"}',
        b'"actor":"c1","op":"recv","content":"z","server_offset":6,"csr_offset":"o-2"}',
        b'"actor":"c1","op":"show","content":"z","server_offset":6}',
    ]
