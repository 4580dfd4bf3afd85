"""The official socket.io-client driver, against real servers and real node.

The Node peer (the official socket.io server with connection state recovery) shows
the client's recovery; SIGSTOP on the server holds acks so that the client's own
`ackTimeout`/`retries` queue retries; a scripted python-socketio server checks the
receive policies and the handshake `auth` the client sends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import psutil
import pytest
import socketio
from aiohttp import web

from faultlab.harness.clients.base import ChatClient, ClientConfig
from faultlab.harness.clients.official import OfficialClient, OfficialWorker, WorkerError
from faultlab.harness.history import History
from faultlab.harness.processes import Child, Supervisor
from faultlab.harness.store import read_rows
from faultlab.harness.targets import load_target

pytestmark = pytest.mark.node


async def until(cond: Callable[[], bool], deadline: float = 10.0, what: str = "") -> None:
    """Wait for a condition, failing with `what` after `deadline` seconds."""
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"not within {deadline}s: {what or cond}")
        await asyncio.sleep(0.01)


class Run:
    """A supervisor, a history, a worker and (optionally) a target server."""

    def __init__(self, tmp: Path, sup: Supervisor, history: History, worker: OfficialWorker):
        self.tmp = tmp
        self.sup = sup
        self.history = history
        self.worker = worker
        self.server: Child | None = None
        self.db = tmp / "chat.db"
        self.target = load_target("node-peer")

    async def start_target(self, name: str, level: str, recovery: str = "off") -> Child:
        self.target = load_target(name)
        values = self.target.values(
            host="127.0.0.1", port=0, db=self.db, delivery=level, recovery=recovery
        )
        self.server = await self.sup.spawn(
            "server", self.target.argv(values), self.tmp / "logs" / "server.log",
            env=self.target.environment(values), ready_url=self.target.health,
        )
        return self.server

    async def arm(self, name: str, action: str, **fields: int) -> None:
        """Arm a failpoint in the reference server through its admin route."""
        assert self.server is not None and self.server.url is not None
        async with (
            aiohttp.ClientSession() as http,
            http.post(
                f"{self.server.url}/admin/failpoints",
                json={"name": name, "action": action, **fields},
            ) as r,
        ):
            assert r.status == 200, await r.text()

    def client(self, cid: str, url: str | None = None, **knobs: Any) -> OfficialClient:
        url = url or (self.server.url if self.server else None)
        assert url is not None
        knobs.setdefault("level", "exactly-once")
        return self.worker.client(ClientConfig(id=cid, url=url, **knobs))

    def events(self, actor: str | None = None, *ops: str) -> list[dict[str, Any]]:
        """Everything recorded so far (optionally one actor's, some ops)."""
        self.history.flush()
        lines = (self.tmp / "history.jsonl").read_bytes().splitlines()
        out = [orjson.loads(line) for line in lines]
        return [
            e for e in out
            if (actor is None or e["actor"] == actor) and (not ops or e["op"] in ops)
        ]

    def rows(self) -> list[dict[str, Any]]:
        return read_rows(self.target.store, self.db)


@pytest.fixture
async def run(tmp_path: Path) -> AsyncIterator[Run]:
    async with (
        Supervisor() as sup,
        History(tmp_path / "history.jsonl") as history,
        OfficialWorker(sup, history, tmp_path / "logs" / "js-worker.log") as worker,
    ):
        yield Run(tmp_path, sup, history, worker)
        await worker.close()
        assert worker.child is not None and not worker.child.running


async def test_official_client_implements_the_chat_client_protocol(run: Run) -> None:
    await run.start_target("node-peer", "exactly-once")
    assert isinstance(run.client("c0"), ChatClient)


async def test_sends_are_acked_stored_once_and_shown_everywhere(run: Run) -> None:
    await run.start_target("node-peer", "exactly-once")
    a, b = run.client("c0"), run.client("c1", receive="naive")
    await asyncio.gather(a.start(), b.start())
    msgs = [await a.send(f"tok-{i}") for i in range(5)]
    await until(lambda: a.pending() == 0 and len(b.shown()) == 5, what="5 acks and shows")

    assert [e["msg"] for e in run.events("c0", "ack")] == msgs  # one in flight: order kept
    assert [e["n"] for e in run.events("c0", "attempt")] == [1] * 5
    sends = run.events("c0", "send")
    assert len({e["client_offset"] for e in sends}) == 5
    assert all(e["client_offset"].startswith(a.sid or "?") for e in sends[:1])
    rows = run.rows()
    assert [r["content"] for r in rows] == [f"tok-{i}" for i in range(5)]
    assert [r["client_offset"] for r in rows] == [e["client_offset"] for e in sends]
    shows = run.events("c1", "show")
    assert [(s["content"], s["server_offset"]) for s in shows] == [
        (r["content"], r["id"]) for r in rows
    ]
    assert all(e["csr_offset"] is None for e in run.events("c1", "recv"))


@pytest.mark.parametrize("transport", ["polling", "upgrade"])
async def test_other_transports_deliver(run: Run, transport: str) -> None:
    await run.start_target("node-peer", "at-least-once")
    a = run.client("c0", level="at-least-once", transport=transport)
    await a.start()
    await a.send("over-" + transport)
    await until(lambda: a.pending() == 0 and a.shown() == {1}, what="ack and show")
    assert run.events("c0", "send")[0]["client_offset"] is None  # no offset below exactly-once
    assert [r["content"] for r in run.rows()] == ["over-" + transport]


@pytest.mark.parametrize("target", ["node-peer", "reference"])
async def test_recovery_after_an_abrupt_close_replays_missed_messages(
    run: Run, target: str
) -> None:
    await run.start_target(target, "exactly-once", recovery="memory")
    sender = run.client("c0", recovery="memory")
    reader = run.client("c1", recovery="memory", reconnect_delay=0.5)
    await asyncio.gather(sender.start(), reader.start())
    await sender.send("before")
    await until(lambda: reader.shown() == {1}, what="first show")

    await reader.drop_transport()
    await until(lambda: not reader.connected, what="reader disconnected")
    await sender.send("missed")
    await until(lambda: sender.pending() == 0, what="ack of the missed message")
    await until(lambda: reader.connected and reader.shown() == {1, 2}, what="recovered")

    connects = run.events("c1", "connect")
    assert [c["recovered"] for c in connects] == [False, True]
    assert connects[0]["sid"] == connects[1]["sid"]  # the recovered session keeps its id
    ops = [e["op"] for e in run.events("c1", "recv", "connect", "disconnect")]
    assert ops == ["connect", "recv", "disconnect", "connect", "recv"]
    replay = run.events("c1", "recv")[-1]
    assert replay["content"] == "missed" and isinstance(replay["csr_offset"], str)


@pytest.mark.parametrize(("target", "recovered"), [("node-peer", False), ("reference", True)])
async def test_no_recovery_before_any_event_socketio_5538(
    run: Run, target: str, recovered: bool
) -> None:
    """A client that received nothing sends `pid` without `offset` (#5538).

    The official server cannot restore that session; the reference server restores it
    from the session's origin on purpose.
    """
    await run.start_target(target, "exactly-once", recovery="memory")
    quiet = run.client("c0", recovery="memory")
    await quiet.start()
    await quiet.drop_transport()
    await until(lambda: len(run.events("c0", "connect")) == 2, what="reconnection")
    assert [c["recovered"] for c in run.events("c0", "connect")] == [False, recovered]


async def test_ack_timeout_retries_and_exactly_once_stores_one_row(run: Run) -> None:
    server = await run.start_target("node-peer", "exactly-once")
    a = run.client("c0", ack_timeout=0.2, retries=None)
    await a.start()
    await server.pause()
    msg = await a.send("held")
    await until(lambda: len(run.events("c0", "attempt")) >= 2, what="a second attempt")
    await server.resume()
    await until(lambda: a.pending() == 0, what="the ack")
    attempts = [e["n"] for e in run.events("c0", "attempt") if e["msg"] == msg]
    assert attempts[:2] == [1, 2]
    assert [e["msg"] for e in run.events("c0", "ack")] == [msg]
    assert [r["content"] for r in run.rows()] == ["held"]


async def test_retry_after_a_reconnect_stores_a_duplicate_socketio_5334(run: Run) -> None:
    """at-least-once: the first attempt reached the server, the ack did not come back."""
    server = await run.start_target("node-peer", "at-least-once")
    a = run.client("c0", level="at-least-once", ack_timeout=30.0, connect_timeout=1.0)
    await a.start()
    await server.pause()
    msg = await a.send("twice")
    await until(lambda: run.events("c0", "attempt"), what="the first attempt")
    await a.drop_transport()
    await until(lambda: not a.connected, what="disconnect")
    await server.resume()
    await until(lambda: a.pending() == 0, what="the ack after reconnecting")

    ops = [(e["op"], e.get("n")) for e in run.events("c0", "attempt", "connect", "disconnect")]
    assert ops[:4] == [("connect", None), ("attempt", 1), ("disconnect", None), ("connect", None)]
    assert ("attempt", 2) in ops[4:]
    assert [e["msg"] for e in run.events("c0", "ack")] == [msg]
    assert [r["content"] for r in run.rows()] == ["twice", "twice"]


async def test_a_delayed_ack_is_retried_and_stored_once_at_exactly_once(run: Run) -> None:
    """The reference server commits, then holds the ack longer than the client waits."""
    await run.start_target("reference", "exactly-once")
    await run.arm("after_commit", "delay", ms=800, count=1)
    a = run.client("c0", ack_timeout=0.2)
    await a.start()
    msg = await a.send("slow ack")
    await until(lambda: a.pending() == 0, what="the ack")
    attempts = [e["n"] for e in run.events("c0", "attempt")]
    assert attempts[:2] == [1, 2]
    assert [e["msg"] for e in run.events("c0", "ack")] == [msg]
    assert [r["content"] for r in run.rows()] == ["slow ack"]


async def test_reference_server_duplicates_a_retry_after_reconnect_at_least_once(
    run: Run,
) -> None:
    """socket.io #5334 on the reference server: committed, ack lost with the transport."""
    await run.start_target("reference", "at-least-once")
    await run.arm("after_commit", "delay", ms=500, count=1)
    a = run.client("c0", level="at-least-once", ack_timeout=30.0)
    await a.start()
    msg = await a.send("once?")
    await until(lambda: run.events("c0", "attempt"), what="the first attempt")
    await until(lambda: len(run.rows()) == 1, what="the first row committed")
    await a.drop_transport()
    await until(lambda: a.pending() == 0, what="the ack after reconnecting")
    assert [e["n"] for e in run.events("c0", "attempt")] == [1, 2]
    assert [e["msg"] for e in run.events("c0", "ack")] == [msg]
    assert [r["content"] for r in run.rows()] == ["once?", "once?"]


async def test_retries_exhausted_give_up(run: Run) -> None:
    server = await run.start_target("node-peer", "at-least-once")
    a = run.client("c0", level="at-least-once", ack_timeout=0.1, retries=2)
    await a.start()
    await server.pause()
    msg = await a.send("hopeless")
    await until(lambda: a.pending() == 0, what="give up")
    await server.resume()
    assert [e["n"] for e in run.events("c0", "attempt")] == [1, 2, 3]
    (give_up,) = run.events("c0", "give_up")
    assert give_up["msg"] == msg and "retries exhausted" in give_up["reason"]


async def test_weak_levels_offline(run: Run) -> None:
    await run.start_target("node-peer", "buffered")
    lossy = run.client("c0", level="at-most-once")
    buffering = run.client("c1", level="buffered")
    await asyncio.gather(lossy.start(), buffering.start())
    await lossy.go_offline(2.0)
    await buffering.go_offline(2.0)
    await until(lambda: not lossy.connected and not buffering.connected, what="offline")
    dropped = await lossy.send("dropped")
    kept = await buffering.send("kept")
    await until(lambda: lossy.pending() == 0, what="the offline send given up")
    assert [(e["msg"], e["reason"]) for e in run.events("c0", "give_up")] == [
        (dropped, "offline")
    ]
    assert buffering.pending() == 1 and not buffering.connected  # in the client's buffer
    await until(lambda: buffering.pending() == 0 and lossy.connected, what="buffer flushed")
    assert [e["msg"] for e in run.events("c1", "attempt")] == [kept]
    await until(lambda: lossy.shown() == {1}, what="the kept message shown")
    assert [r["content"] for r in run.rows()] == ["kept"]


async def test_refresh_and_leave(run: Run) -> None:
    await run.start_target("node-peer", "exactly-once")
    a, b = run.client("c0"), run.client("c1")
    await asyncio.gather(a.start(), b.start())
    for i in range(3):
        await a.send(f"r{i}")
    await until(lambda: len(b.shown()) == 3, what="3 shows")

    await b.refresh(persist_offset=True)
    await until(lambda: b.connected and b.resume_from == 3, what="refreshed from 3")
    await b.refresh(persist_offset=False)
    await until(lambda: b.connected and b.shown() == {1, 2, 3}, what="everything again from 0")
    sessions = [e["resume_from"] for e in run.events("c1", "session_start")]
    assert sessions == [0, 3, 0]
    shows_last_session = run.events("c1", "show")[-3:]
    assert [s["server_offset"] for s in shows_last_session] == [1, 2, 3]

    await a.leave()
    assert a.left
    await until(lambda: not a.connected, what="left")
    assert [e["op"] for e in run.events("c0")][-2:] == ["leave", "disconnect"]
    with pytest.raises(WorkerError, match="left"):
        await a.send("too late")


@pytest.mark.parametrize(
    ("receive", "shown", "auth_after"),
    [("strict", ["a", "b", "c"], 3), ("naive", ["a", "b", "a", "z", "c"], 2)],
)
async def test_receive_policy_and_the_server_offset_sent_on_reconnect(
    run: Run, receive: str, shown: list[str], auth_after: int
) -> None:
    auths: list[Any] = []
    frames: list[tuple[str, Any]] = [("a", 1), ("b", 3), ("a", 1), ("z", "not-an-id"), ("c", 2)]
    sio = socketio.AsyncServer(async_mode="aiohttp")
    connected: list[str] = []

    @sio.on("connect")
    async def on_connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        auths.append(auth)
        connected.append(sid)

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        c = run.client("c0", url=f"http://127.0.0.1:{port}", receive=receive)
        await c.start()
        for content, offset in frames:
            await sio.emit("chat message", (content, offset), to=connected[-1])
        await until(lambda: len(run.events("c0", "recv")) == 5, what="5 receives")
        assert [s["content"] for s in run.events("c0", "show")] == shown
        assert c.shown() == {1, 2, 3}
        await c.drop_transport()
        await until(lambda: len(auths) == 2, what="the reconnection's handshake")
        assert auths == [{"serverOffset": 0}, {"serverOffset": auth_after}]
        await c.close()
    finally:
        await sio.shutdown()
        await runner.cleanup()


async def test_bad_commands_get_a_precise_error_and_the_worker_keeps_serving(run: Run) -> None:
    await run.start_target("node-peer", "exactly-once")
    with pytest.raises(WorkerError, match='unknown client "nobody"'):
        await run.worker.request("drop", c="nobody")
    with pytest.raises(WorkerError, match="unknown op"):
        await run.worker.request("explode")
    with pytest.raises(WorkerError, match=r"config\.url must be an http"):
        await run.worker.request("open", c="x", config={"url": "ftp://nope", "level": "buffered"})
    with pytest.raises(ValueError, match="already exists"):
        run.client("c0"), run.client("c0")
    a = run.worker.clients["c0"]
    await a.start()
    assert a.connected
    refused = await a.send(123)  # type: ignore[arg-type]
    await until(lambda: a.pending() == 0, what="the refused send given up")
    (give_up,) = run.events("c0", "give_up")
    assert give_up["msg"] == refused
    assert give_up["reason"] == "driver refused: send needs a string content"
    assert (await run.worker.stats())["clients"] == 1


async def test_a_dead_worker_fails_waiters_with_its_log(run: Run) -> None:
    await run.start_target("node-peer", "exactly-once")
    a = run.client("c0")
    await a.start()
    assert run.worker.child is not None
    await run.worker.child.kill()
    await until(lambda: not a.connected, what="the client marked disconnected")
    with pytest.raises(WorkerError, match="js-worker exited; log"):
        await a.send("nowhere")
    assert run.events("c0", "disconnect")[-1]["reason"] == "js-worker exited"


async def test_an_error_in_the_scenario_leaves_no_worker_and_no_port(tmp_path: Path) -> None:
    worker: OfficialWorker | None = None
    with pytest.raises(RuntimeError, match="scenario failed"):
        async with (
            Supervisor() as sup,
            History(None) as history,
            OfficialWorker(sup, history, tmp_path / "js-worker.log") as worker,
        ):
            raise RuntimeError("scenario failed")
    assert worker is not None and worker.child is not None and worker.child.proc is not None
    assert worker.child.proc.returncode == 0  # it exited by itself when the harness hung up
    assert not psutil.pid_exists(worker.child.proc.pid)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", worker.child.port)


@pytest.mark.parametrize("graceful", [True, False])
async def test_the_client_rides_through_a_server_restart(run: Run, graceful: bool) -> None:
    server = await run.start_target("reference", "exactly-once")
    a = run.client("c0")
    await a.start()
    await a.send("before")
    await until(lambda: a.shown() == {1}, what="first show")
    if graceful:
        await server.terminate()
    else:
        await server.kill()
    await until(lambda: not a.connected, what="disconnected")
    after = await a.send("after")
    await server.restart()
    await until(lambda: a.connected and a.pending() == 0 and a.shown() == {1, 2}, what="resumed")
    assert [e["msg"] for e in run.events("c0", "ack")][-1] == after
    assert len(run.events("c0", "connect")) == 2
    assert [r["content"] for r in run.rows()] == ["before", "after"]
