"""The official socket.io-client (npm, under node) against faultlab's targets.

Connection state recovery as the real client sees it: after
`socket.io.engine.close()` it reports `socket.recovered === true` and gets each
missed event exactly once — again and again, before it received any event, and
(durable) across `kill -9` and a restart. With recovery off it reports false and
catches up through `auth.serverOffset`. The same tests run against the Node peer
(the official `socket.io` server), which checks the tests themselves: where the
peer and the reference server differ, the test says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultlab.harness.processes import Child, Supervisor
from faultlab.harness.targets import Target, load_target

pytestmark = pytest.mark.node

CLIENT_JS = Path(__file__).parent / "js" / "client.mjs"
REPO = Path(__file__).resolve().parents[2]
KNOBS = {"ping_interval": 5.0, "ping_timeout": 5.0, "recovery_window": 30.0, "busy_timeout": 2.0}
WAIT = 10.0

Event = dict[str, Any]


class JsClient:
    """One node process running tests/server/js/client.mjs, spoken to in JSON lines."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self.events: list[Event] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._ids = itertools.count(1)

    @classmethod
    async def start(cls, name: str) -> JsClient:
        node = shutil.which("node")
        assert node, "node is not on PATH (scripts/setup installs the npm packages it needs)"
        proc = await asyncio.create_subprocess_exec(
            node,
            str(CLIENT_JS),
            cwd=REPO,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        client = cls(proc, name)
        await client.wait(lambda e: e["ev"] == "ready")
        return client

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.events.append(json.loads(raw))
            self._changed.set()

    async def send(self, cmd: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        await self.proc.stdin.drain()

    async def wait(
        self, match: Callable[[Event], bool], since: int = 0, timeout: float = WAIT
    ) -> Event:
        """The first event from index `since` on that matches; fails after `timeout`."""

        async def scan() -> Event:
            seen = since
            while True:
                for event in self.events[seen:]:
                    if match(event):
                        return event
                    if event["ev"] == "error":
                        raise AssertionError(f"{self.name}: {event['detail']}")
                seen = len(self.events)
                self._changed.clear()
                if self.proc.returncode is not None and self._reader.done():
                    raise AssertionError(f"{self.name}: client exited ({self.proc.returncode})")
                await self._changed.wait()

        try:
            return await asyncio.wait_for(scan(), timeout)
        except TimeoutError:
            tail = "\n".join(json.dumps(e) for e in self.events[-15:])
            raise AssertionError(
                f"{self.name}: no matching event within {timeout}s; last events:\n{tail}"
            ) from None

    async def connect(self, url: str, **options: Any) -> Event:
        mark = len(self.events)
        await self.send("connect", url=url, **options)
        return await self.wait(lambda e: e["ev"] == "connect", mark)

    async def chat(self, content: str, client_offset: str) -> Any:
        """Send one message with an ack and return the ack's value."""
        msg_id = next(self._ids)
        mark = len(self.events)
        await self.send("emit", id=msg_id, args=[content, client_offset])
        event = await self.wait(lambda e: e.get("id") == msg_id, mark)
        assert event["ev"] == "ack", f"{self.name}: {content!r} not acked: {event}"
        return event["value"]

    async def cut(self, *, reconnect: bool) -> None:
        """`socket.io.engine.close()`; with reconnect=False the client stays away until `rejoin`."""
        mark = len(self.events)
        await self.send("close_engine", reconnect=reconnect)
        await self.wait(lambda e: e["ev"] == "disconnect", mark)

    async def rejoin(self) -> Event:
        mark = len(self.events)
        await self.send("rejoin")
        return await self.wait(lambda e: e["ev"] == "connect", mark)

    def received(self, since: int = 0) -> list[str]:
        return [e["args"][0] for e in self.events[since:] if e["ev"] == "recv"]

    async def wait_received(self, contents: list[str], since: int = 0) -> None:
        want = set(contents)
        await self.wait(lambda _: want <= set(self.received(since)), since)

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@dataclass
class Server:
    """A target started from its shipped target file, restartable on the same port."""

    target: Target
    db: Path
    recovery: str
    child: Child

    @property
    def url(self) -> str:
        assert self.child.url is not None
        return self.child.url

    @property
    def name(self) -> str:
        return self.target.name

    async def restart(self) -> None:
        """Start again on the port it had, with the same store (after a kill or exit)."""
        values = self.target.values(
            host="127.0.0.1",
            port=self.child.port or 0,
            db=self.db,
            delivery="exactly-once",
            recovery=self.recovery,
            knobs=KNOBS,
        )
        self.child.env = self.target.environment(values)
        await self.child.restart(self.target.argv(values))


@contextlib.asynccontextmanager
async def serve(name: str, recovery: str, tmp: Path) -> AsyncIterator[Server]:
    target = load_target(name)
    db = tmp / f"{name}.db"
    values = target.values(
        host="127.0.0.1", port=0, db=db, delivery="exactly-once", recovery=recovery, knobs=KNOBS
    )
    log = tmp / f"{name}.log"
    async with Supervisor() as supervisor:
        child = await supervisor.spawn(
            name,
            target.argv(values),
            log,
            env=target.environment(values),
            ready_url=target.health,
            deadline=target.startup_deadline,
        )
        yield Server(target, db, recovery, child)


@contextlib.asynccontextmanager
async def clients(*names: str) -> AsyncIterator[list[JsClient]]:
    started: list[JsClient] = []
    try:
        for name in names:
            started.append(await JsClient.start(name))
        yield started
    finally:
        for client in started:
            await client.close()


CSR_TARGETS = [("reference", "memory"), ("reference", "durable"), ("node-peer", "memory")]


def target_id(param: tuple[str, str]) -> str:
    return f"{param[0]}-{param[1]}"


@pytest.fixture(params=CSR_TARGETS, ids=target_id)
async def csr_server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    name, recovery = request.param
    async with serve(name, recovery, tmp_path) as server:
        yield server


async def test_recovers_missed_events_exactly_once(csr_server: Server) -> None:
    async with clients("reader", "sender") as (reader, sender):
        first = await reader.connect(csr_server.url)
        assert first["recovered"] is False
        await sender.connect(csr_server.url)
        assert await sender.chat("before", "s-1") is None
        await reader.wait_received(["before"])

        await reader.cut(reconnect=False)
        missed = [f"missed-{i}" for i in range(5)]
        for i, content in enumerate(missed):
            assert await sender.chat(content, f"s-m{i}") is None
        mark = len(reader.events)
        again = await reader.rejoin()

        assert again["recovered"] is True, f"{csr_server.name}: not recovered: {again}"
        assert again["sid"] == first["sid"], "a recovered session keeps its id"
        await reader.wait_received(missed, mark)
        assert await sender.chat("after", "s-2") is None
        await reader.wait_received(["after"], mark)
        assert reader.received(mark) == [*missed, "after"], "each missed event once, in order"
        # every replayed event carries its CSR offset as the last argument
        assert all(isinstance(e["csr_offset"], str) for e in reader.events if e["ev"] == "recv")


async def test_recovers_again_and_again_on_the_same_client(csr_server: Server) -> None:
    async with clients("reader", "sender") as (reader, sender):
        await reader.connect(csr_server.url)
        await sender.connect(csr_server.url)
        assert await sender.chat("hello", "s-0") is None
        await reader.wait_received(["hello"])
        expected = ["hello"]
        for round_ in range(5):
            await reader.cut(reconnect=False)
            batch = [f"r{round_}-{i}" for i in range(3)]
            for i, content in enumerate(batch):
                assert await sender.chat(content, f"s-{round_}-{i}") is None
            expected += batch
            connected = await reader.rejoin()
            assert connected["recovered"] is True, f"round {round_}: {connected}"
            await reader.wait_received(batch)
        # and with the client's own reconnection (no pause): still recovered, nothing twice
        mark = len(reader.events)
        await reader.cut(reconnect=True)
        connected = await reader.wait(lambda e: e["ev"] == "connect", mark)
        assert connected["recovered"] is True
        assert await sender.chat("last", "s-last") is None
        await reader.wait_received(["last"], mark)
        assert reader.received() == [*expected, "last"]


async def test_recovery_before_any_event(csr_server: Server) -> None:
    """The client got nothing before it dropped, so it sends `pid` without `offset`.

    The official server cannot recover that session (socket.io #5538) and falls back
    to a new session plus catch-up; the reference server restores it from the last
    packet it sent to the session. Either way, each missed event arrives once.
    """
    async with clients("reader", "sender") as (reader, sender):
        first = await reader.connect(csr_server.url)
        await sender.connect(csr_server.url)
        await reader.cut(reconnect=False)
        missed = ["m-0", "m-1", "m-2"]
        for i, content in enumerate(missed):
            assert await sender.chat(content, f"s-{i}") is None
        again = await reader.rejoin()
        await reader.wait_received(missed)
        assert reader.received() == missed
        if csr_server.name == "node-peer":
            assert again["recovered"] is False and again["sid"] != first["sid"]
        else:
            assert again["recovered"] is True and again["sid"] == first["sid"]


@pytest.mark.parametrize("name", ["reference", "node-peer"])
async def test_without_recovery_the_client_catches_up_from_its_server_offset(
    name: str, tmp_path: Path
) -> None:
    async with (
        serve(name, "off", tmp_path) as server,
        clients("reader", "sender") as (reader, sender),
    ):
        await sender.connect(server.url)
        for i in range(3):
            assert await sender.chat(f"old-{i}", f"s-old-{i}") is None
        await reader.connect(server.url)
        await reader.wait_received(["old-0", "old-1", "old-2"])
        assert all(e["csr_offset"] is None for e in reader.events if e["ev"] == "recv")

        await reader.cut(reconnect=False)
        missed = [f"missed-{i}" for i in range(4)]
        for i, content in enumerate(missed):
            assert await sender.chat(content, f"s-{i}") is None
        mark = len(reader.events)
        again = await reader.rejoin()
        assert again["recovered"] is False
        await reader.wait_received(missed, mark)
        assert await sender.chat("after", "s-after") is None
        await reader.wait_received(["after"], mark)
        assert reader.received(mark) == [*missed, "after"], "catch-up sends only id > serverOffset"


async def test_durable_recovery_survives_kill_and_restart(tmp_path: Path) -> None:
    async with (
        serve("reference", "durable", tmp_path) as server,
        clients("reader", "sender") as (reader, sender),
    ):
        first = await reader.connect(server.url)
        await sender.connect(server.url)
        assert await sender.chat("before", "s-before") is None
        await reader.wait_received(["before"])

        await reader.send("hold")  # the reader stays away until told to rejoin
        mark = len(sender.events)
        await server.child.kill()
        await reader.wait(lambda e: e["ev"] == "disconnect")
        await server.restart()
        await sender.wait(lambda e: e["ev"] == "connect", mark, timeout=20)
        missed = [f"missed-{i}" for i in range(4)]
        for i, content in enumerate(missed):
            assert await sender.chat(content, f"s-{i}") is None

        mark = len(reader.events)
        again = await reader.rejoin()
        assert again["recovered"] is True, f"not recovered across kill -9: {again}"
        assert again["sid"] == first["sid"]
        await reader.wait_received(missed, mark)
        assert await sender.chat("after", "s-after") is None
        await reader.wait_received(["after"], mark)
        assert reader.received() == ["before", *missed, "after"]


async def test_memory_recovery_does_not_survive_a_restart(tmp_path: Path) -> None:
    """The official server's weak spot (#5413), kept on purpose by `--recovery memory`:
    after a restart the client gets a new session, and catch-up fills the gap."""
    async with (
        serve("reference", "memory", tmp_path) as server,
        clients("reader", "sender") as (reader, sender),
    ):
        first = await reader.connect(server.url)
        await sender.connect(server.url)
        assert await sender.chat("before", "s-before") is None
        await reader.wait_received(["before"])
        await reader.send("hold")
        mark = len(sender.events)
        await server.child.kill()
        await reader.wait(lambda e: e["ev"] == "disconnect")
        await server.restart()
        await sender.wait(lambda e: e["ev"] == "connect", mark, timeout=20)
        assert await sender.chat("missed", "s-missed") is None
        again = await reader.rejoin()
        assert again["recovered"] is False and again["sid"] != first["sid"]
        await reader.wait_received(["missed"])
        assert reader.received() == ["before", "missed"]


async def test_durable_recovery_before_any_event_across_a_restart(tmp_path: Path) -> None:
    """#5538 and #5413 at once: no offset on the client, and the server restarted."""
    async with (
        serve("reference", "durable", tmp_path) as server,
        clients("reader", "sender") as (reader, sender),
    ):
        first = await reader.connect(server.url)
        await sender.connect(server.url)
        await reader.send("hold")
        mark = len(sender.events)
        await server.child.kill()
        await reader.wait(lambda e: e["ev"] == "disconnect")
        await server.restart()
        await sender.wait(lambda e: e["ev"] == "connect", mark, timeout=20)
        missed = ["m-0", "m-1"]
        for i, content in enumerate(missed):
            assert await sender.chat(content, f"s-{i}") is None
        again = await reader.rejoin()
        assert again["recovered"] is True and again["sid"] == first["sid"], again
        await reader.wait_received(missed)
        assert await sender.chat("after", "s-after") is None
        await reader.wait_received(["after"])
        assert reader.received() == [*missed, "after"]


@pytest.mark.parametrize("name", ["reference", "node-peer"])
async def test_recovery_over_long_polling(name: str, tmp_path: Path) -> None:
    async with (
        serve(name, "memory", tmp_path) as server,
        clients("reader", "sender") as (reader, sender),
    ):
        first = await reader.connect(server.url, transports=["polling"])
        await sender.connect(server.url)
        assert await sender.chat("before", "s-before") is None
        await reader.wait_received(["before"])
        await reader.cut(reconnect=False)
        missed = [f"missed-{i}" for i in range(3)]
        for i, content in enumerate(missed):
            assert await sender.chat(content, f"s-{i}") is None
        again = await reader.rejoin()
        assert again["recovered"] is True and again["sid"] == first["sid"], again
        await reader.wait_received(missed)
        assert reader.received() == ["before", *missed]
