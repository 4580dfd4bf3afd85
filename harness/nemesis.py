"""The nemesis: applies a fault schedule (DESIGN §3.5) to the cluster and the clients.

Each fault runs as its own task: wait for its start time (and its condition, when
it has one, so an expected violation does not depend on luck), start, record
`fault_start`, hold for its duration, heal, record `fault_end`. Failpoints are
watched so the history also says when one actually fired (`fault_fired`).
`heal_all` ends whatever is still active before the workload quiesces.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from faultlab.harness.clients.base import ChatClient
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.processes import Child
from faultlab.harness.schedule import KINDS, Fault
from faultlab.harness.store import StoreLock

log = logging.getLogger("faultlab.nemesis")
POLL = 0.02  # seconds between checks of a condition or of the failpoint state


@dataclass
class Active:
    """A fault that has started and not yet been healed: how to heal it."""

    id: str
    fault: Fault
    heal: Callable[[], Awaitable[None]]
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    healing: bool = False


class Nemesis:
    """Applies one schedule; times are seconds after `run()` is called."""

    def __init__(
        self,
        cluster: Cluster,
        clients: Sequence[ChatClient],
        history: History,
        schedule: Sequence[Fault],
        *,
        seed: int = 0,
    ) -> None:
        self.cluster = cluster
        self.clients = list(clients)
        self.history = history
        self.schedule = list(schedule)
        self.rng = random.Random(seed)
        self.active: dict[str, Active] = {}
        self.errors: list[str] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lock: Child | None = None
        self._lock_seq = 0
        self._prepared: dict[str, asyncio.Task[StoreLock]] = {}
        self._fired_before: dict[str, int] = {}
        self._server_lock = asyncio.Lock()

    # -- running a schedule ----------------------------------------------------------------

    def start(self) -> None:
        """Schedule every fault from now on (returns at once)."""
        t0 = time.monotonic()
        for i, fault in enumerate(self.schedule):
            if fault.kind == "store_lock":
                self._prepared[f"f{i + 1}"] = asyncio.create_task(self._prepare_lock(fault))
            self._tasks.append(asyncio.create_task(self._run_one(f"f{i + 1}", fault, t0)))

    async def run(self) -> None:
        """Apply the whole schedule and wait until every fault has ended."""
        self.start()
        await self.wait()

    async def wait(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def done(self) -> bool:
        return all(t.done() for t in self._tasks)

    async def _run_one(self, fid: str, fault: Fault, t0: float) -> None:
        try:
            delay = t0 + fault.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            targets = self._clients_for(fault) if fault.family == "client" else []
            if fault.when is not None:
                await self._wait_for(fid, fault, targets)
            heal = await self._apply(fid, fault, targets)
            active = Active(fid, fault, heal)
            self.active[fid] = active
            self.history.record("nemesis", "fault_start", fault=fid, kind=fault.kind,
                                target=fault.target, params=fault.params)
            if KINDS[fault.kind].instant:
                await self._end(active)
                return
            if fault.kind == "failpoint":
                await self._watch_failpoint(active)
            else:
                await asyncio.sleep(fault.duration)
            await self._end(active)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a fault that cannot be applied must not end the run
            message = f"{fid} {fault.kind} on {fault.target}: {exc}"
            log.error("fault failed: %s", message)
            self.errors.append(message)

    async def _end(self, active: Active) -> None:
        if active.healing:
            await active.ended.wait()
            return
        active.healing = True
        try:
            await active.heal()
        finally:
            self.active.pop(active.id, None)
            self.history.record("nemesis", "fault_end", fault=active.id, kind=active.fault.kind,
                                target=active.fault.target, params=active.fault.params)
            active.ended.set()

    async def heal_all(self) -> None:
        """Cancel faults that have not started and heal every active one (before quiesce)."""
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self._drop_prepared()
        for active in list(self.active.values()):
            try:
                await self._end(active)
            except Exception as exc:
                self.errors.append(f"{active.id} {active.fault.kind}: heal failed: {exc}")
        if self.cluster.proxies is not None:
            await self.cluster.proxies.control.heal()
        if self.cluster.server is not None:
            if self.cluster.server.paused:
                await self.cluster.server.resume()
            if not self.cluster.server.running:
                await self._start_server()

    # -- conditions --------------------------------------------------------------------------

    async def _wait_for(self, fid: str, fault: Fault, targets: list[ChatClient]) -> None:
        watched = targets or self.clients
        if fault.when == "in_flight":
            def met() -> bool:
                return any(c.connected and c.pending() > 0 for c in watched)
        else:
            def met() -> bool:
                return all(c.connected for c in watched if not c.left)
        end = time.monotonic() + fault.params["when_deadline"]
        while not met():
            if time.monotonic() > end:
                log.warning("%s: condition %r not met within %.1fs; applied anyway",
                            fid, fault.when, fault.params["when_deadline"])
                return
            await asyncio.sleep(POLL)

    # -- applying faults: one method per family ---------------------------------------------

    async def _apply(self, fid: str, fault: Fault, targets: list[ChatClient]
                     ) -> Callable[[], Awaitable[None]]:
        apply = {
            "network": self._network,
            "client": self._client,
            "process": self._process,
            "store": self._store,
            "failpoint": self._failpoint,
        }[fault.family]
        return await apply(fid, fault, targets)

    async def _network(self, fid: str, fault: Fault, _: list[ChatClient]
                       ) -> Callable[[], Awaitable[None]]:
        assert self.cluster.proxies is not None
        control = self.cluster.proxies.control
        names = self.cluster.proxy_names(fault.target)
        if fault.kind == "partition":
            for name in names:
                await control.disable(name)

            async def heal_partition() -> None:
                for name in names:
                    await control.enable(name)
            return heal_partition
        kind = KINDS[fault.kind]
        assert kind.toxic is not None
        attributes = {k: v for k, v in fault.params.items()
                      if k not in ("stream", "toxicity", "when", "when_deadline")}
        if fault.kind == "blackhole":
            attributes = {"timeout": 0}
        stream = fault.params["stream"]
        streams = ("upstream", "downstream") if stream == "both" else (stream,)
        added: list[tuple[str, str]] = []
        for name in names:
            for s in streams:
                toxic = await control.add_toxic(
                    name, kind.toxic, stream=s, toxicity=fault.params["toxicity"],
                    attributes=attributes, name=f"{fid}_{s}",
                )
                added.append((name, toxic))

        async def heal_toxics() -> None:
            for name, toxic in added:
                await control.remove_toxic(name, toxic)
        return heal_toxics

    def _clients_for(self, fault: Fault) -> list[ChatClient]:
        live = [c for c in self.clients if not c.left]
        target = fault.target
        if target == "all":
            return live
        what, _, arg = target.partition(":")
        if what == "client":
            chosen = [c for c in live if c.config.id == arg]
            if not chosen:
                raise ValueError(f"no live client {arg!r}")
            return chosen
        if what == "group":
            group = int(arg)
            return [c for i, c in enumerate(self.clients)
                    if not c.left and self.cluster.group_of(i) == group]
        count = min(int(arg), len(live))
        return self.rng.sample(live, count)

    async def _client(self, fid: str, fault: Fault, clients: list[ChatClient]
                      ) -> Callable[[], Awaitable[None]]:
        if fault.kind == "drop_transport":
            await asyncio.gather(*(c.drop_transport() for c in clients))
        elif fault.kind == "refresh":
            persist = fault.params["persist_offset"]
            await asyncio.gather(*(c.refresh(persist) for c in clients))
        elif fault.kind == "offline":
            await asyncio.gather(*(c.go_offline(fault.duration) for c in clients))
        elif fault.kind == "leave":
            await asyncio.gather(*(c.leave() for c in clients))

        async def nothing() -> None:
            """Client faults heal themselves (the client reconnects on its own)."""
        return nothing

    async def _start_server(self) -> None:
        async with self._server_lock:
            server = self.cluster.server
            if server is None or not server.running:
                await self.cluster.start_server()

    async def _process(self, fid: str, fault: Fault, _: list[ChatClient]
                       ) -> Callable[[], Awaitable[None]]:
        server = self.cluster.server
        assert server is not None
        if fault.kind == "pause":
            await server.pause()

            async def heal_pause() -> None:
                await server.resume()
            return heal_pause
        async with self._server_lock:
            await self.cluster.stop_server(kill=fault.kind == "kill")
        return self._start_server

    async def _store(self, fid: str, fault: Fault, _: list[ChatClient]
                     ) -> Callable[[], Awaitable[None]]:
        if fault.kind == "store_lock":
            prepared = self._prepared.pop(fid, None)
            lock = await (prepared if prepared is not None else self._prepare_lock(fault))
            try:
                await lock.acquire()
            except BaseException:
                await lock.release()
                raise
            return lock.release
        count = fault.params["count"] or None
        await self.cluster.arm_failpoint("before_insert", "error", count=count)
        return self._disarm("before_insert")

    async def _drop_prepared(self) -> None:
        """Stop lock helpers whose fault never started (they hold no lock)."""
        prepared, self._prepared = list(self._prepared.values()), {}
        for task in prepared:
            task.cancel()
        for result in await asyncio.gather(*prepared, return_exceptions=True):
            if isinstance(result, StoreLock):
                await result.release()

    async def _prepare_lock(self, fault: Fault) -> StoreLock:
        """Start a lock helper ahead of its fault (see `StoreLock`)."""
        self._lock_seq += 1
        return await StoreLock.prepare(
            self.cluster.supervisor, self.cluster.store_path,
            self.cluster.run.log(f"store-lock-{self._lock_seq}"), mode=fault.params["mode"],
        )

    def _disarm(self, name: str) -> Callable[[], Awaitable[None]]:
        async def heal_failpoint() -> None:
            server = self.cluster.server
            if server is not None and server.running and not server.paused:
                await self.cluster.arm_failpoint(name, "off")
        return heal_failpoint

    async def _failpoint(self, fid: str, fault: Fault, _: list[ChatClient]
                         ) -> Callable[[], Awaitable[None]]:
        p = fault.params
        # Count what fired before arming: the point may fire (or crash the server)
        # before the watcher's first look.
        self._fired_before[fid] = len((await self.cluster.failpoints())["fired"])
        await self.cluster.arm_failpoint(p["name"], p["action"], ms=p["ms"],
                                         count=p["count"] or None)
        disarm = self._disarm(p["name"])

        async def heal_failpoint() -> None:
            server = self.cluster.server
            if server is not None and not server.running and p["restart"]:
                await self._start_server()
            await disarm()
        return heal_failpoint

    async def _watch_failpoint(self, active: Active) -> None:
        """Record `fault_fired` each time the armed point fires, until the fault ends.

        A crash leaves no state to poll: the server's exit is the evidence; with
        `restart` the server is started again at once (on the same port and store).
        """
        p = active.fault.params
        server = self.cluster.server
        assert server is not None
        seen = self._fired_before.pop(active.id, 0)
        fired = 0
        end = time.monotonic() + active.fault.duration if active.fault.duration else None
        while end is None or time.monotonic() < end:
            if not server.running:
                self.history.record("nemesis", "fault_fired", fault=active.id, name=p["name"])
                if p["restart"]:
                    await self._start_server()
                return
            state = await self._poll_failpoints()
            if state is not None:
                new = [f for f in state["fired"][seen:] if f["name"] == p["name"]]
                seen = len(state["fired"])
                for _ in new:
                    self.history.record("nemesis", "fault_fired", fault=active.id,
                                        name=p["name"])
                fired += len(new)
                if p["count"] and fired >= p["count"] and p["name"] not in state["armed"]:
                    return
            await asyncio.sleep(POLL)

    async def _poll_failpoints(self) -> dict[str, Any] | None:
        server = self.cluster.server
        if server is None or not server.running or server.paused:
            return None
        with contextlib.suppress(Exception):
            return await self.cluster.failpoints()
        return None

    async def close(self) -> None:
        """Cancel everything without healing (the cluster is being torn down)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._drop_prepared()
