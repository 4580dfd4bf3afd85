"""`faultlab doctor`: start a target and check it against the chat contract (DESIGN §3.1).

Before a target's verdicts mean anything, it must speak the contract: ack a stored
message (with no payload), reject bad input with ``{error, detail}``, broadcast
``(content, server_offset)`` with the row id, catch a client up from
``auth.serverOffset``, dedupe at exactly-once, ack in the order it claims, and
recover a dropped connection when it claims recovery. Each check is run on a fresh
server per level with independent python-socketio clients, and a failure says what
was expected and what came back.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import orjson
import socketio

from faultlab.harness.clients.base import RECOVERY_MODES
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.processes import ChildFailed
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.store import read_rows
from faultlab.harness.targets import Target, TargetError, load_target

ACKED = ("at-least-once", "exactly-once")
WAIT = 3.0  # seconds to wait for any one expected answer
QUIET = 0.2  # seconds of silence that count as "nothing more arrives"
KNOBS = {"ping_interval": 1.0, "ping_timeout": 1.0, "recovery_window": 10.0}


class Mismatch(AssertionError):
    """The target does not do what the contract says; the message says how."""


@dataclass
class Finding:
    level: str
    check: str
    ok: bool
    detail: str = ""


@dataclass
class Probe:
    """A plain python-socketio client that records every `chat message` it receives."""

    url: str
    auth: dict[str, Any]
    events: list[tuple[Any, ...]] = field(default_factory=list)
    sio: socketio.AsyncClient = field(default_factory=lambda: socketio.AsyncClient(
        reconnection=False))

    async def connect(self) -> Probe:
        self.sio.on("chat message", self._on)
        await self.sio.connect(self.url, auth=self.auth, transports=["websocket"],
                               wait_timeout=WAIT)
        return self

    async def _on(self, *args: Any) -> None:
        self.events.append(args)

    async def wait_events(self, n: int, what: str) -> list[tuple[Any, ...]]:
        end = time.monotonic() + WAIT
        while len(self.events) < n:
            if time.monotonic() > end:
                raise Mismatch(f"{what}: expected {n} `chat message` event(s) within {WAIT:.0f}s, "
                               f"got {len(self.events)}: {self.events}")
            await asyncio.sleep(0.01)
        await asyncio.sleep(QUIET)
        return list(self.events)

    async def close(self) -> None:
        await self.sio.disconnect()


def _offsets(events: list[tuple[Any, ...]], what: str) -> list[int]:
    out = []
    for args in events:
        if len(args) < 2 or not isinstance(args[0], str) or type(args[1]) is not int:
            raise Mismatch(f"{what}: expected `chat message` args (content: str, offset: int), "
                           f"got {list(args)!r}")
        out.append(args[1])
    return out


class Doctor:
    """Runs every check for one level on one fresh server."""

    def __init__(self, target: Target, level: str, recovery: str, work: Path) -> None:
        self.target = target
        self.level = level
        self.recovery = recovery
        self.work = work
        self.findings: list[Finding] = []
        self.tag = uuid.uuid4().hex[:6]
        self.label = level if recovery == "off" else f"{level}+{recovery}"

    async def run(self) -> list[Finding]:
        run = create_run_dir(self.work / f"{self.level}-{self.recovery}")
        try:
            async with Cluster(run, self.target, self.level, self.recovery, knobs=KNOBS,
                               proxy=False) as cluster:
                self.cluster = cluster
                self.url = cluster.server_url
                await self._check("health", self._health)
                if await self._check("send, ack and broadcast", self._send_and_broadcast):
                    await self._check("store rows match the broadcasts", self._store)
                    await self._check("catch-up from serverOffset", self._catch_up)
                    await self._check("invalid serverOffset counts as 0", self._bad_offset)
                    if self.level in ACKED:
                        await self._check("bad input is rejected with {error, detail}",
                                          self._reject)
                    if self.level == "exactly-once":
                        await self._check("a duplicate client offset is acked, not stored",
                                          self._dedupe)
                    if self.recovery != "off":
                        await self._check(f"connection state recovery ({self.recovery})",
                                          self._recovery)
        except ChildFailed as exc:
            self.findings.append(Finding(self.label, "start", False, str(exc)))
        return self.findings

    async def _check(self, name: str, fn: Callable[[], Awaitable[None]]) -> bool:
        try:
            await fn()
        except Mismatch as exc:
            self.findings.append(Finding(self.label, name, False, str(exc)))
            return False
        except (OSError, socketio.exceptions.SocketIOError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            self.findings.append(Finding(self.label, name, False, detail))
            return False
        self.findings.append(Finding(self.label, name, True))
        return True

    async def _health(self) -> None:
        body = await self.cluster.health()
        for key, want in (("level", self.level), ("recovery", self.recovery)):
            if isinstance(body, dict) and key in body and body[key] != want:
                raise Mismatch(f"GET {self.target.health} says {key}={body[key]!r}, "
                               f"started with {want!r}")

    async def _send(self, probe: Probe, content: str, offset: str | None) -> Any:
        args = (content, offset) if offset is not None else (content,)
        if self.level not in ACKED:
            await probe.sio.emit("chat message", args)
            return None
        try:
            return await probe.sio.call("chat message", args, timeout=WAIT)
        except socketio.exceptions.TimeoutError:
            raise Mismatch(f"no ack within {WAIT:.0f}s for {content!r}") from None

    async def _send_and_broadcast(self) -> None:
        a = await Probe(self.url, {"serverOffset": 0}).connect()
        b = await Probe(self.url, {"serverOffset": 0}).connect()
        self.sent = [f"doctor-{self.tag}-{i}" for i in range(3)]
        try:
            for i, content in enumerate(self.sent):
                before = len(a.events)
                reply = await self._send(a, content, f"{self.tag}-{i}")
                if self.level in ACKED:
                    if reply not in (None, (), []):
                        raise Mismatch(f"ack for {content!r}: expected no payload, got {reply!r}")
                    seen = any(e[0] == content for e in a.events[before:])
                    if self.target.acks == "after-broadcast" and not seen:
                        raise Mismatch(f"target claims acks after-broadcast, but the ack for "
                                       f"{content!r} came before its broadcast")
                else:
                    await a.wait_events(before + 1, f"the sender's own {content!r}")
            got_b = await b.wait_events(3, "broadcast to another client")
            offsets = _offsets(got_b, "broadcast")
            if [e[0] for e in got_b] != self.sent:
                raise Mismatch(f"broadcast contents: expected {self.sent}, got "
                               f"{[e[0] for e in got_b]}")
            if offsets != sorted(set(offsets)):
                raise Mismatch(f"broadcast offsets must increase: got {offsets}")
            self.offsets = offsets
        finally:
            await a.close()
            await b.close()

    async def _store(self) -> None:
        rows = await asyncio.to_thread(read_rows, self.target.store, self.cluster.store_path)
        by_content = {r["content"]: r["id"] for r in rows}
        for content, offset in zip(self.sent, self.offsets, strict=True):
            if content not in by_content:
                raise Mismatch(f"{content!r} was broadcast but is not in the store "
                               f"({self.target.store.table} in {self.cluster.store_path})")
            if by_content[content] != offset:
                raise Mismatch(f"{content!r}: broadcast with offset {offset}, stored with "
                               f"id {by_content[content]}")

    async def _catch_up_from(self, auth: dict[str, Any], expect: list[int], what: str) -> None:
        probe = await Probe(self.url, auth).connect()
        try:
            if expect:
                got = await probe.wait_events(len(expect), what)
            else:
                await asyncio.sleep(QUIET)
                got = list(probe.events)
        finally:
            await probe.close()
        offsets = _offsets(got, what)
        if offsets != expect:
            raise Mismatch(f"{what}: expected offsets {expect} in id order, got {offsets}")

    async def _catch_up(self) -> None:
        first, *rest = self.offsets
        await self._catch_up_from({"serverOffset": 0}, self.offsets, "serverOffset=0")
        await self._catch_up_from({"serverOffset": first}, rest, f"serverOffset={first}")
        await self._catch_up_from({"serverOffset": self.offsets[-1]}, [],
                                  f"serverOffset={self.offsets[-1]} (the latest)")

    async def _bad_offset(self) -> None:
        for bad in ("abc", -1, 1.5):
            await self._catch_up_from({"serverOffset": bad}, self.offsets,
                                      f"serverOffset={bad!r}")
        above = self.offsets[-1] + 1000
        await self._catch_up_from({"serverOffset": above}, self.offsets,
                                  f"serverOffset={above} (above the highest id)")

    async def _reject(self) -> None:
        probe = await Probe(self.url, {"serverOffset": self.offsets[-1]}).connect()
        try:
            reply = await self._send(probe, "", f"{self.tag}-empty")
        finally:
            await probe.close()
        if not (isinstance(reply, dict) and isinstance(reply.get("error"), str)
                and "detail" in reply):
            raise Mismatch(f"empty content: expected an ack {{error, detail}}, got {reply!r}")

    async def _dedupe(self) -> None:
        probe = await Probe(self.url, {"serverOffset": self.offsets[-1]}).connect()
        try:
            reply = await self._send(probe, self.sent[0], f"{self.tag}-0")
            await asyncio.sleep(QUIET)
            extra = list(probe.events)
        finally:
            await probe.close()
        if reply not in (None, (), []):
            raise Mismatch(f"duplicate client offset: expected a plain ack, got {reply!r}")
        rows = await asyncio.to_thread(read_rows, self.target.store, self.cluster.store_path)
        copies = [r["id"] for r in rows if r["content"] == self.sent[0]]
        if len(copies) != 1:
            raise Mismatch(f"duplicate client offset: {self.sent[0]!r} stored {len(copies)} "
                           f"times (ids {copies})")
        if extra:
            raise Mismatch(f"duplicate client offset was broadcast again: {extra}")

    async def _send_seen(self, sender: Probe, name: str) -> int:
        """Send one more message; its server offset, as the sender saw it broadcast."""
        content = f"doctor-{self.tag}-{name}"
        before = len(sender.events)
        await self._send(sender, content, f"{self.tag}-{name}")
        events = await sender.wait_events(before + 1, f"the broadcast of {content!r}")
        return _offsets(events[before:before + 1], "broadcast")[0]

    async def _recovery(self) -> None:
        from faultlab.harness.clients.base import ClientConfig
        from faultlab.harness.clients.lean import LeanClient

        path = self.work / f"recovery-{self.level}.jsonl"
        config = ClientConfig(id="r", url=self.url, level=self.level, recovery=self.recovery,
                              reconnect_delay=0.5)
        sender = await Probe(self.url, {"serverOffset": self.offsets[-1]}).connect()
        async with History(path) as history:
            client = LeanClient(config, history)
            try:
                await client.start()
                await _until(lambda: client.connected, "the recovering client to connect")
                o1 = await self._send_seen(sender, "r1")
                await _until(lambda: o1 in client.shown(),
                             f"the recovering client to receive offset {o1}")
                await client.drop_transport()
                o2 = await self._send_seen(sender, "r2")
                await _until(lambda: client.connected and o2 in client.shown(),
                             f"the recovering client to reconnect and receive offset {o2}")
            finally:
                await client.close()
                await sender.close()
        events = [orjson.loads(line) for line in path.read_bytes().splitlines() if line]
        connects = [e for e in events if e["op"] == "connect"]
        if len(connects) < 2 or connects[-1].get("recovered") is not True:
            raise Mismatch("after an abrupt transport close, the reconnection was not "
                           f"recovered: connects {[(c['sid'], c['recovered']) for c in connects]}")
        r2 = [e for e in events if e["op"] == "recv" and e["content"].endswith("-r2")]
        if not r2 or not isinstance(r2[0].get("csr_offset"), str):
            raise Mismatch(f"the missed message came without a CSR offset: {r2}")


async def _until(cond: Callable[[], bool], what: str, deadline: float = 5.0) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise Mismatch(f"timed out after {deadline:.0f}s waiting for {what}")
        await asyncio.sleep(0.01)


async def diagnose(target: Target, work: Path, levels: list[str] | None = None,
                   recovery: list[str] | None = None) -> list[Finding]:
    """Check every level the target claims without recovery, then each recovery mode it
    claims at its strongest level (recovery is about the connection, not the level)."""
    findings: list[Finding] = []
    chosen = levels or list(target.levels)
    modes = [m for m in target.recovery if recovery is None or m in recovery]
    for mode in modes:
        for level in chosen if mode == "off" else chosen[-1:]:
            findings += await Doctor(target, level, mode, work).run()
    return findings


@click.command()
@click.option("--target", default="reference", show_default=True,
              help="Target file, or a shipped target's name (reference, node-peer).")
@click.option("--level", "levels", multiple=True,
              help="Check only this level (repeatable); default: every level it claims.")
@click.option("--recovery", "modes", multiple=True, type=click.Choice(RECOVERY_MODES),
              help="Check only this recovery mode (repeatable); default: every one it claims.")
def command(target: str, levels: tuple[str, ...], modes: tuple[str, ...]) -> None:
    """Start a target and check it against the chat contract."""
    try:
        spec = load_target(target)
    except TargetError as exc:
        raise click.UsageError(str(exc)) from None
    for level in levels:
        if level not in spec.levels:
            raise click.UsageError(f"target {spec.name!r} does not claim level {level!r} "
                                   f"({', '.join(spec.levels)})")
    for mode in modes:
        if mode not in spec.recovery:
            raise click.UsageError(f"target {spec.name!r} does not claim recovery {mode!r} "
                                   f"({', '.join(spec.recovery)})")
    with tempfile.TemporaryDirectory(prefix="faultlab-doctor-") as tmp:
        try:
            findings = asyncio.run(
                diagnose(spec, Path(tmp), list(levels) or None, list(modes) or None))
        except KeyboardInterrupt:
            sys.exit(130)
    failed = [f for f in findings if not f.ok]
    for f in findings:
        mark = "ok  " if f.ok else "FAIL"
        click.echo(f"{mark} {f.level:<20} {f.check}" + (f": {f.detail}" if f.detail else ""))
    click.echo(f"{spec.name}: " + ("matches the chat contract" if not failed else
                                   f"{len(failed)} mismatch(es) with the chat contract"))
    sys.exit(1 if failed else 0)
