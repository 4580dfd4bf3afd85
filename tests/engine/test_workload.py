"""The workload: seeded plans of unique tokens, and quiescence that converges on a
correct level and says so (ok=false) at the deadline when it cannot."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from test_client_lean import chat

from faultlab.harness.history import History
from faultlab.harness.workload import Workload


class Planned:
    """Stands in for a client in the pure planning tests (no socket is opened)."""

    def __init__(self, cid: str) -> None:
        from faultlab.harness.clients.base import ClientConfig

        self.config = ClientConfig(id=cid, url="http://127.0.0.1:1", level="buffered")
        self.left = False


def plan(seed: int, **kw: float) -> dict[str, list[float]]:
    clients = [Planned(f"c{i}") for i in range(3)]
    return Workload(History(None), clients, 4, seed=seed, **kw).plan()  # type: ignore[arg-type]


def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    assert plan(7, duration=2.0) == plan(7, duration=2.0)
    assert plan(7, duration=2.0) != plan(8, duration=2.0)
    timed = plan(3, rate=5.0, duration=2.0)
    assert all(len(times) == 10 for times in timed.values())
    assert all(0 <= t[0] < 0.2 and t == sorted(t) for t in timed.values())
    assert plan(1) == {f"c{i}": [0.0] * 4 for i in range(3)}


def test_bad_workload_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="rate needs a positive rate and a positive duration"):
        Workload(History(None), [], 1, rate=5.0)
    with pytest.raises(ValueError, match="messages_per_client must be >= 0"):
        Workload(History(None), [], -1)


async def test_quiescence_converges_on_exactly_once(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        clients = [await ch.client(i) for i in range(3)]
        work = Workload(ch.history, clients, 4, duration=0.3, seed=5, run_id="q")
        await work.run()
        await clients[1].drop_transport()
        assert await work.quiesce(ch.cluster.store_ids, deadline=10)
        rows = await ch.rows()
        contents = sorted(r["content"] for r in rows)
        assert contents == sorted(f"q:c{i}:{n}" for i in range(3) for n in range(1, 5))
        for c in clients:
            assert {r["id"] for r in rows} <= c.shown()
        ops = [x["op"] for x in ch.lines("harness")]
        assert ops == ["quiesce_start", "quiesce_end"]
        assert ch.lines("harness", "quiesce_end")[0]["ok"] is True
        assert work.sent == {f"c{i}": 4 for i in range(3)}


async def test_quiescence_reports_the_deadline_when_a_client_stays_offline(
        tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a, b = await ch.client(0), await ch.client(1)
        work = Workload(ch.history, [a, b], 2, seed=1)
        await work.run()
        await b.go_offline(60)
        assert not await work.quiesce(ch.cluster.store_ids, deadline=0.5)
        assert ch.lines("harness", "quiesce_end")[0]["ok"] is False
        assert work.last_quiesce.waiting == {"c1": "not connected"}
        assert work.last_quiesce.waited >= 0.5


async def test_a_client_that_left_is_not_waited_for(tmp_path: Path) -> None:
    async with chat(tmp_path) as ch:
        a, b = await ch.client(0), await ch.client(1)
        await b.leave()
        work = Workload(ch.history, [a, b], 3, seed=random.Random(2).randrange(100))
        await work.run()
        assert await work.quiesce(ch.cluster.store_ids, deadline=10)
        assert work.sent == {"c0": 3}
