"""The lean simulated client against the real reference server, through the real proxy:
every client behaviour shows up in the history as DESIGN §3.3 specifies."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.targets import load_target

# whole seconds: python-engineio 4.15 advertises int(ping_interval) * 1000 ms, so a
# sub-second interval reaches clients as 0 and they time out after ping_timeout alone
KNOBS = {"ping_interval": 1.0, "ping_timeout": 0.5}


@dataclass
class Chat:
    cluster: Cluster
    history: History
    http: aiohttp.ClientSession
    clients: list[LeanClient]
    level: str
    recovery: str

    def config(self, i: int, **over: Any) -> ClientConfig:
        base = ClientConfig(id=f"c{i}", url=self.cluster.client_url(i), level=self.level,
                            recovery=self.recovery, ack_timeout=0.3, reconnect_delay=0.05)
        return replace(base, **over)

    async def client(self, i: int, **over: Any) -> LeanClient:
        c = LeanClient(self.config(i, **over), self.history, http=self.http,
                       rng=random.Random(i))
        self.clients.append(c)
        await c.start()
        await until(lambda: c.connected, f"c{i} connected")
        return c

    def lines(self, actor: str | None = None, op: str | None = None) -> list[dict[str, Any]]:
        self.history.flush()
        assert self.history.path is not None
        out = [orjson.loads(x) for x in self.history.path.read_bytes().splitlines()]
        return [x for x in out if (actor is None or x["actor"] == actor)
                and (op is None or x["op"] == op)]

    async def rows(self) -> list[dict[str, Any]]:
        return await self.cluster.snapshot(self.cluster.run.path / "rows.jsonl")


async def until(cond: Callable[[], bool], what: str, deadline: float = 10.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def chat(tmp_path: Path, level: str = "exactly-once", recovery: str = "off",
               **knobs: float) -> AsyncIterator[Chat]:
    run = create_run_dir(tmp_path / "run")
    async with (
        Cluster(run, load_target(), level, recovery, knobs={**KNOBS, **knobs}) as cluster,
        History(run.history) as history,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        c = Chat(cluster, history, http, [], level, recovery)
        try:
            yield c
        finally:
            for client in c.clients:
                await client.close()


def shown_offsets(chat: Chat, actor: str) -> list[int]:
    return [x["server_offset"] for x in chat.lines(actor, "show")]


async def test_exactly_once_sends_sid_counter_offsets_and_everyone_shows_every_row(
        tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a, b = await ch.client(0), await ch.client(1)
        for n in range(3):
            await a.send(f"hello-{n}")
        await until(lambda: len(b.shown()) == 3 and a.pending() == 0, "3 rows shown")
        sends = ch.lines("c0", "send")
        assert [s["client_offset"] for s in sends] == [f"{a.sid}-{n}" for n in range(3)]
        assert [x["msg"] for x in ch.lines("c0", "ack")] == [s["msg"] for s in sends]
        assert [x["n"] for x in ch.lines("c0", "attempt")] == [1, 1, 1]
        rows = await ch.rows()
        assert [(r["content"], r["client_offset"]) for r in rows] == [
            (s["content"], s["client_offset"]) for s in sends]
        for actor in ("c0", "c1"):
            recvs = ch.lines(actor, "recv")
            assert [(x["content"], x["server_offset"]) for x in recvs] == [
                (r["content"], r["id"]) for r in rows]
            assert all(x["csr_offset"] is None for x in recvs)
            assert shown_offsets(ch, actor) == [r["id"] for r in rows]
        connects = ch.lines(op="connect")
        assert {x["actor"] for x in connects} == {"c0", "c1"}
        assert not any(x["recovered"] for x in connects)
        assert ch.lines("c0", "session_start") == [
            {"t": ch.lines("c0", "session_start")[0]["t"], "actor": "c0",
             "op": "session_start", "resume_from": 0}]


async def test_random_offsets_are_unique(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a = await ch.client(0, offsets="random")
        for n in range(4):
            await a.send(f"r-{n}")
        await until(lambda: a.pending() == 0, "sent")
        offsets = [s["client_offset"] for s in ch.lines("c0", "send")]
        assert len(set(offsets)) == 4 and all(len(o) == 32 for o in offsets)
        assert [r["client_offset"] for r in await ch.rows()] == offsets


async def test_at_least_once_sends_a_null_offset_and_is_acked(tmp_path: Path) -> None:
    async with chat(tmp_path, "at-least-once") as ch:
        a = await ch.client(0)
        await a.send("alo")
        await until(lambda: a.pending() == 0 and 1 in a.shown(), "acked and shown")
        assert ch.lines("c0", "send")[0]["client_offset"] is None
        assert len(ch.lines("c0", "ack")) == 1
        assert [(r["content"], r["client_offset"]) for r in await ch.rows()] == [("alo", None)]


async def test_unacked_sends_are_retried_one_at_a_time_then_given_up(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a = await ch.client(0, retries=1)
        await ch.cluster.arm_failpoint("before_insert", "error", count=2)
        first = await a.send("lost-after-two")
        second = await a.send("second")
        await until(lambda: a.pending() == 0, "settled", deadline=10)
        attempts = [(x["msg"], x["n"]) for x in ch.lines("c0", "attempt")]
        assert attempts == [(first, 1), (first, 2), (second, 1)]
        assert ch.lines("c0", "give_up")[0] | {"t": 0} == {
            "t": 0, "actor": "c0", "op": "give_up", "msg": first, "reason": "retries"}
        assert [x["msg"] for x in ch.lines("c0", "ack")] == [second]
        assert [r["content"] for r in await ch.rows()] == ["second"]


async def test_retries_forever_until_the_store_accepts(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a = await ch.client(0)
        await ch.cluster.arm_failpoint("before_insert", "error", count=3)
        msg = await a.send("eventually")
        await until(lambda: a.pending() == 0, "acked")
        assert [x["n"] for x in ch.lines("c0", "attempt")] == [1, 2, 3, 4]
        assert [x["msg"] for x in ch.lines("c0", "ack")] == [msg]


async def test_a_rejected_message_is_never_retried(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a = await ch.client(0)
        msg = await a.send("")
        await until(lambda: a.pending() == 0, "settled")
        assert [x["n"] for x in ch.lines("c0", "attempt")] == [1]
        rejects = ch.lines("c0", "reject")
        assert [(x["msg"], x["error"]) for x in rejects] == [(msg, "content_empty")]
        assert not ch.lines("c0", "ack")


async def test_at_most_once_gives_up_while_offline(tmp_path: Path) -> None:
    async with chat(tmp_path, "at-most-once") as ch:
        a = await ch.client(0)
        await a.go_offline(0.5)
        assert not a.connected
        msg = await a.send("into the void")
        await until(lambda: a.pending() == 0, "given up")
        assert [(x["msg"], x["reason"]) for x in ch.lines("c0", "give_up")] == [(msg, "offline")]
        await until(lambda: a.connected, "back online")
        await a.send("heard")
        await until(lambda: 1 in a.shown(), "shown")
        assert ch.lines("c0", "send")[1]["client_offset"] is None
        assert [r["content"] for r in await ch.rows()] == ["heard"]
        assert [x["reason"] for x in ch.lines("c0", "disconnect")] == ["offline"]


async def test_buffered_keeps_offline_sends_and_flushes_them_on_reconnect(
        tmp_path: Path) -> None:
    async with chat(tmp_path, "buffered") as ch:
        a = await ch.client(0)
        await a.go_offline(0.4)
        for n in range(3):
            await a.send(f"b-{n}")
        assert a.pending() == 3 and not ch.lines("c0", "attempt")
        await until(lambda: a.pending() == 0 and len(a.shown()) == 3, "flushed and shown")
        assert [r["content"] for r in await ch.rows()] == ["b-0", "b-1", "b-2"]
        attempts, connects = ch.lines("c0", "attempt"), ch.lines("c0", "connect")
        assert len(connects) == 2 and all(x["t"] > connects[1]["t"] for x in attempts)


async def test_drop_transport_reconnects_and_catches_up_from_server_offset(
        tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a, b = await ch.client(0), await ch.client(1)
        await a.send("before")
        await until(lambda: 1 in b.shown(), "first shown")
        old_sid = b.sid
        await b.drop_transport()
        await a.send("while-b-away")
        await until(lambda: b.connected and 2 in b.shown(), "b caught up")
        assert b.sid != old_sid
        assert [x["reason"] for x in ch.lines("c1", "disconnect")] == ["drop"]
        assert [x["content"] for x in ch.lines("c1", "show")] == ["before", "while-b-away"]
        assert [x["recovered"] for x in ch.lines("c1", "connect")] == [False, False]


async def test_page_refresh_starts_a_new_display_session(tmp_path: Path) -> None:
    async with chat(tmp_path, "buffered") as ch:
        a = await ch.client(0)
        for n in range(2):
            await a.send(f"p-{n}")
        await until(lambda: len(a.shown()) == 2, "shown")
        await a.refresh(persist_offset=True)
        await until(lambda: a.connected, "reloaded")
        await a.go_offline(30)
        pending = await a.send("unsent")
        await a.refresh(persist_offset=False)
        await a.go_offline(0)
        await until(lambda: a.connected and {1, 2} <= set(a.shown()), "full reload shown")
        starts = [x["resume_from"] for x in ch.lines("c0", "session_start")]
        assert starts == [0, 2, 0]
        assert [(x["msg"], x["reason"]) for x in ch.lines("c0", "give_up")] == [
            (pending, "refresh")]
        # the persisted session shows nothing old; the session from 0 shows both rows again
        lines = ch.lines("c0")
        s1 = next(i for i, x in enumerate(lines) if x.get("resume_from") == 2)
        s2 = max(i for i, x in enumerate(lines) if x["op"] == "session_start")
        assert not [x for x in lines[s1:s2] if x["op"] == "show"]
        assert [x["server_offset"] for x in lines[s2:] if x["op"] == "show"] == [1, 2]
        assert a.shown() == {1, 2} and 1 in a.shown()
        assert [r["content"] for r in await ch.rows()] == ["p-0", "p-1"]


async def test_recovery_sends_pid_and_offset_and_reports_recovered(tmp_path: Path) -> None:
    async with chat(tmp_path, recovery="memory") as ch:
        a, b = await ch.client(0, recovery="memory"), await ch.client(1, recovery="memory")
        await a.send("one")
        await until(lambda: 1 in b.shown(), "b has one")
        recv = ch.lines("c1", "recv")[0]
        assert isinstance(recv["csr_offset"], str) and recv["server_offset"] == 1
        sid = b.sid
        await b.drop_transport()
        await a.send("two")
        await until(lambda: b.connected and 2 in b.shown(), "b recovered two")
        assert b.sid == sid
        assert [x["recovered"] for x in ch.lines("c1", "connect")] == [False, True]
        assert b._auth()["pid"] and b._auth()["offset"] == ch.lines("c1", "recv")[-1][
            "csr_offset"]


async def test_a_client_that_received_nothing_sends_a_pid_without_offset(
        tmp_path: Path) -> None:
    """socket.io #5538: with no event received there is no offset; the official server
    then cannot restore, the reference server restores from the session's origin."""
    async with chat(tmp_path, recovery="memory") as ch:
        b = await ch.client(1, recovery="memory")
        auth = b._auth()
        assert list(auth) == ["pid", "serverOffset"] and isinstance(auth["pid"], str)
        sid = b.sid
        await b.drop_transport()
        await until(lambda: b.connects == 2, "reconnected")
        recovered = [x["recovered"] for x in ch.lines("c1", "connect")]
        assert recovered == [False, b.sid == sid]


@pytest.mark.parametrize("transport", ["polling", "upgrade"])
async def test_polling_and_upgrade_transports_carry_the_chat(tmp_path: Path,
                                                             transport: str) -> None:
    async with chat(tmp_path) as ch:
        a = await ch.client(0, transport=transport)
        b = await ch.client(1, transport=transport)
        if transport == "upgrade":
            await until(lambda: a.carried_by == "websocket" == b.carried_by, "upgraded")
        else:
            assert a.carried_by == "polling"
        for n in range(3):
            await a.send(f"{transport}-{n}")
        await until(lambda: len(b.shown()) == 3 and a.pending() == 0, "all shown")
        await b.drop_transport()
        await a.send("after-drop")
        await until(lambda: b.connected and 4 in b.shown(), "b caught up")
        assert [x["content"] for x in ch.lines("c1", "show")] == [
            f"{transport}-{n}" for n in range(3)] + ["after-drop"]


async def test_a_silent_network_is_noticed_by_the_ping_timeout(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a = await ch.client(0)
        control = ch.cluster.proxies.control  # type: ignore[union-attr]
        name = ch.cluster.proxies.names[0]  # type: ignore[union-attr]
        await control.add_toxic(name, "timeout", stream="downstream", toxicity=1.0,
                                attributes={"timeout": 0})
        await until(lambda: not a.connected, "ping timeout noticed", deadline=5)
        await control.heal()
        await until(lambda: a.connected, "reconnected", deadline=5)
        assert ch.lines("c0", "disconnect")[0]["reason"] == "ping timeout"


async def test_leave_gives_up_the_outbox_and_close_records_no_leave(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a, b = await ch.client(0), await ch.client(1)
        await a.go_offline(30)
        msg = await a.send("never")
        await a.leave()
        assert a.left and a.pending() == 0
        assert [x["op"] for x in ch.lines("c0")][-2:] == ["give_up", "leave"]
        assert ch.lines("c0", "give_up")[0]["msg"] == msg
        await b.close()
        assert not b.connected and not ch.lines("c1", "leave")
        assert ch.lines("c1", "disconnect")[-1]["reason"] == "io client disconnect"
        with pytest.raises(RuntimeError, match="has ended"):
            await b.send("too late")


def test_bad_client_config_gets_a_precise_error() -> None:
    with pytest.raises(ValueError, match=r"level must be one of .*not 'twice'"):
        ClientConfig(id="c1", url="http://127.0.0.1:1", level="twice")
    with pytest.raises(ValueError, match="transport must be one of"):
        ClientConfig(id="c1", url="http://127.0.0.1:1", level="buffered", transport="carrier")
    with pytest.raises(ValueError, match="retries must be >= 0"):
        ClientConfig(id="c1", url="http://127.0.0.1:1", level="buffered", retries=-1)
