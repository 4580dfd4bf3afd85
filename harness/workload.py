"""The chat workload: clients send unique tokens, then the run quiesces.

Every content is unique in the run (`{run_id}:{client}:{n}`), because the checker
matches store rows and receives to sends by content. Quiescence is the harness's
"then wait until everyone has caught up": it is what turns "a message never arrived"
into a violation rather than a matter of patience, and when it cannot be reached
before the deadline that is recorded (`quiesce_end ok=false`) instead of hidden.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from faultlab.harness.clients.base import ChatClient
from faultlab.harness.history import History


@dataclass
class QuiesceReport:
    """Why the last quiescence did (not) converge: client id -> what it still lacks."""

    ok: bool = False
    waited: float = 0.0
    waiting: dict[str, str] = field(default_factory=dict)


class Workload:
    """N clients each sending M messages (back to back, or spread over `duration`),
    or sending at `rate` messages/s each for `duration` seconds."""

    def __init__(
        self,
        history: History,
        clients: Sequence[ChatClient],
        messages_per_client: int = 10,
        rate: float | None = None,
        duration: float | None = None,
        seed: int = 0,
        run_id: str | None = None,
    ) -> None:
        if messages_per_client < 0:
            raise ValueError(f"messages_per_client must be >= 0, not {messages_per_client}")
        if rate is not None and (rate <= 0 or duration is None or duration <= 0):
            raise ValueError("rate needs a positive rate and a positive duration")
        if duration is not None and duration < 0:
            raise ValueError(f"duration must be >= 0, not {duration}")
        self.history = history
        self.clients = list(clients)
        self.messages_per_client = messages_per_client
        self.rate = rate
        self.duration = duration
        self.seed = seed
        self.run_id = run_id or f"r{seed}"
        self.sent: dict[str, int] = {}
        self.last_quiesce = QuiesceReport()

    def plan(self) -> dict[str, list[float]]:
        """When each client sends (seconds after `run` starts): the same seed, the same plan."""
        rng = random.Random(self.seed)
        plan: dict[str, list[float]] = {}
        for client in self.clients:
            if self.rate is not None and self.duration is not None:
                period = 1.0 / self.rate
                count = int(self.rate * self.duration)
                start = rng.uniform(0, period)
                plan[client.config.id] = [start + i * period for i in range(count)]
            elif self.duration:
                period = self.duration / max(self.messages_per_client, 1)
                start = rng.uniform(0, period)
                plan[client.config.id] = [
                    start + i * period for i in range(self.messages_per_client)
                ]
            else:
                plan[client.config.id] = [0.0] * self.messages_per_client
        return plan

    def content(self, client_id: str, n: int) -> str:
        return f"{self.run_id}:{client_id}:{n}"

    async def run(self) -> None:
        """Issue every send of the plan (delivery continues in the clients)."""
        plan = self.plan()
        t0 = asyncio.get_running_loop().time()
        await asyncio.gather(*(self._drive(c, plan[c.config.id], t0) for c in self.clients))

    async def _drive(self, client: ChatClient, times: list[float], t0: float) -> None:
        loop = asyncio.get_running_loop()
        cid = client.config.id
        for n, at in enumerate(times, 1):
            wait = t0 + at - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if client.left:
                return
            try:
                await client.send(self.content(cid, n))
            except RuntimeError:  # the client has ended
                return
            self.sent[cid] = n

    async def quiesce(
        self,
        store_ids: Callable[[], Awaitable[set[int]]],
        deadline: float,
        *,
        poll: float = 0.05,
    ) -> bool:
        """Wait until every client that has not left is connected, has nothing pending,
        and has shown every stored id above its session's `resume_from`; record it."""
        loop = asyncio.get_running_loop()
        self.history.record("harness", "quiesce_start")
        start = loop.time()
        end = start + deadline
        report = QuiesceReport()
        while True:
            report.waiting = await self._waiting(store_ids)
            if not report.waiting:
                report.ok = True
                break
            if loop.time() >= end:
                break
            await asyncio.sleep(min(poll, max(0.0, end - loop.time())))
        report.waited = loop.time() - start
        self.last_quiesce = report
        self.history.record("harness", "quiesce_end", ok=report.ok)
        return report.ok

    async def _waiting(self, store_ids: Callable[[], Awaitable[set[int]]]) -> dict[str, str]:
        active = [c for c in self.clients if not c.left]
        waiting: dict[str, str] = {}
        for c in active:
            if not c.connected:
                waiting[c.config.id] = "not connected"
            elif c.pending():
                waiting[c.config.id] = f"{c.pending()} pending"
        if waiting:
            return waiting
        ids = sorted(await store_ids())
        for c in active:
            shown = c.shown()
            missing = [i for i in ids if i not in shown]
            if missing:
                more = f" (+{len(missing) - 5} more)" if len(missing) > 5 else ""
                waiting[c.config.id] = f"missing {missing[:5]}{more}"
        return waiting
