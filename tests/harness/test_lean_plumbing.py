"""The lean client's per-frame plumbing: socket bytes go straight into the frame splitter
in front of aiohttp's parser (no `ResponseHandler.data_received` per read), reads are
capped below glibc's mmap threshold, and frames still arrive in order on both event
loops; a broadcast is decoded once for all its clients; the `recv` and `show` lines
are the bytes of format 1's dicts."""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path

import aiohttp
import orjson
import pytest
import uvloop
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.clients.transports import WebSocketTransport, _Frames
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
            frames = proto.data_received.__self__
            assert isinstance(frames, _Frames)
            assert frames._feed == transport.ws._parser.feed_data  # type: ignore[union-attr]
            assert getattr(proto.transport, "max_size", 0) <= 64 * 1024
            for n in range(30):
                await a.send(f"m{n}")
            while len(b.shown()) < 30 or a.pending():
                assert time.monotonic() < end + 20, "not all shown within 30 s"
                await asyncio.sleep(0.01)
            await b.drop_transport()  # an abrupt close, which each loop must support
            while b._transport is transport or not b.connected:
                assert time.monotonic() < end + 30, "no reconnect within 40 s"
                await asyncio.sleep(0.01)
            await a.send("m30")
            while len(b.shown()) < 31:
                assert time.monotonic() < end + 40, "not shown after the reconnect"
                await asyncio.sleep(0.01)
        finally:
            for c in (a, b):
                await c.close()
    return [orjson.loads(x) for x in run.history.read_bytes().splitlines()]


def _check(lines: list[dict[str, object]]) -> None:
    got = [x["content"] for x in lines if x["actor"] == "c1" and x["op"] == "show"]
    assert got == [f"m{n}" for n in range(31)]
    cuts = [x["reason"] for x in lines if x["actor"] == "c1" and x["op"] == "disconnect"]
    assert cuts[0] == "drop", cuts


def test_frames_go_straight_to_the_parser_on_asyncio(tmp_path: Path) -> None:
    _check(asyncio.run(_exchange(tmp_path)))


def test_frames_go_straight_to_the_parser_on_uvloop(tmp_path: Path) -> None:
    _check(uvloop.run(_exchange(tmp_path)))


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=6,
)


@settings(max_examples=200, deadline=None)
@given(actor=st.text(min_size=1), content=_JSON, offset=_JSON, csr=st.none() | st.text(),
       shown=st.booleans())
def test_receive_lines_are_the_bytes_of_the_format_1_dicts(
        tmp_path_factory: pytest.TempPathFactory, actor: str, content: object, offset: object,
        csr: str | None, shown: bool) -> None:
    """The byte templates write exactly what encoding the two dicts would (any actor,
    `%` and quotes included; any JSON value)."""
    path = tmp_path_factory.mktemp("h") / "history.jsonl"
    history = History(path)
    t = history.record_receive(actor, content, offset, csr, shown)
    history.close()
    expected = orjson.dumps({"t": t, "actor": actor, "op": "recv", "content": content,
                             "server_offset": offset, "csr_offset": csr},
                            option=orjson.OPT_APPEND_NEWLINE)
    if shown:
        expected += orjson.dumps({"t": t, "actor": actor, "op": "show", "content": content,
                                  "server_offset": offset}, option=orjson.OPT_APPEND_NEWLINE)
    assert path.read_bytes() == expected
    assert history.count == (2 if shown else 1)


def test_a_broadcast_is_decoded_once_and_recorded_by_every_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The clients of a broadcast share the first one's decode; a different packet in
    between (another broadcast, a redelivery with other arguments) is decoded anew."""
    from faultlab.harness.clients import lean

    parsed: list[str] = []

    def counting_loads(body: str) -> object:
        parsed.append(body)
        return orjson.loads(body)

    monkeypatch.setattr(lean, "_loads", counting_loads)
    path = tmp_path / "history.jsonl"
    history = History(path)
    clients = [LeanClient(ClientConfig(f"c{i}", "http://127.0.0.1:9", "exactly-once",
                                       receive="strict"), history) for i in range(3)]
    for c in clients:
        c.connected = True
    first, second = '42["chat message","a",1]', '42["chat message","b",2,"x"]'
    for packet in (first, second):
        for c in clients:
            c._on_packet(packet)
    clients[0]._on_packet(first)  # a redelivery: already shown, recorded as recv only
    history.close()
    assert parsed == ['["chat message","a",1]', '["chat message","b",2,"x"]',
                      '["chat message","a",1]']
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    got = [(x["actor"], x["op"], x["content"], x["server_offset"]) for x in lines]
    assert got == [
        *((f"c{i}", op, "a", 1) for i in range(3) for op in ("recv", "show")),
        *((f"c{i}", op, "b", 2) for i in range(3) for op in ("recv", "show")),
        ("c0", "recv", "a", 1),
    ]
    assert [x["csr_offset"] for x in lines if x["op"] == "recv"] == [None] * 3 + ["x"] * 3 + [None]
