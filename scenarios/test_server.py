"""Server process faults and failpoints (DESIGN §3.5): exactly-once comes through clean.

A crash loses the server's memory (recovery state, in-flight acks); the store and
server delivery must still bring every client to the same, complete view.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from scenario_knobs import KNOBS, SPREAD

pytestmark = [pytest.mark.exactly_once]


@pytest.mark.process
@pytest.mark.parametrize("kind", ["kill", "restart"], ids=["kill-9", "graceful-restart"])
async def test_server_dies_mid_traffic(faultlab: Any, kind: str) -> None:
    outcome = await faultlab.run(level="exactly-once",
                                 faults=[{"at": 0.4, "duration": 0.3, "kind": kind}], **SPREAD)
    assert outcome.metrics["reconnects"] >= outcome.metrics["clients"]


@pytest.mark.process
async def test_pause_longer_than_the_ping_timeout(faultlab: Any) -> None:
    """SIGSTOP past ping interval + timeout: clients give the server up and come back."""
    pause = KNOBS["ping_interval"] + KNOBS["ping_timeout"] + 0.5
    outcome = await faultlab.run(level="exactly-once",
                                 faults=[{"at": 0.3, "duration": pause, "kind": "pause"}],
                                 **SPREAD)
    assert outcome.metrics["reconnects"] >= 1


def _fired(run_dir: Any) -> list[str]:
    lines = (run_dir / "history.jsonl").read_bytes().splitlines()
    events = [orjson.loads(line) for line in lines if line.strip()]
    return [e["fault"] for e in events if e["op"] == "fault_fired"]


def _failpoint(name: str, action: str, at: float) -> dict[str, Any]:
    return {"at": at, "duration": 2.0 if action == "crash" else 0.45, "kind": "failpoint",
            "params": {"name": name, "action": action, "ms": 300, "count": 1}}


@pytest.mark.failpoint
@pytest.mark.parametrize("name", ["before_insert", "after_commit", "before_broadcast",
                                  "during_sync"])
async def test_crash_error_and_delay_at_each_failpoint(faultlab: Any, name: str) -> None:
    """An error, then a delay, then a crash at one failpoint, each firing once."""
    faults = [_failpoint(name, action, at)
              for action, at in (("error", 0.1), ("delay", 0.6), ("crash", 1.1))]
    if name == "during_sync":  # the catch-up runs when a client connects: make it reconnect
        faults += [{"at": at + 0.05, "kind": "drop_transport", "target": "client:c0"}
                   for at in (0.1, 0.6, 1.1)]
    outcome = await faultlab.run(level="exactly-once", faults=faults, **SPREAD)
    assert sorted(_fired(outcome.run_dir)) == ["f1", "f2", "f3"], "each failpoint fired once"
