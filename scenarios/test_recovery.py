"""Connection state recovery (DESIGN §1, layer 1): when it recovers, and that server
delivery covers every case where it does not.

The recovered ratio is measured (and gated with `min_recovered_ratio`): memory
recovery survives a dropped transport but not a restart; durable recovery survives
both; past the recovery window nothing is recovered; none of it may lose a message.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_knobs import KNOBS, SPREAD

pytestmark = [pytest.mark.recovery, pytest.mark.exactly_once]

DROP_ALL = [{"at": 0.4, "kind": "drop_transport", "target": "all"}]


@pytest.mark.client
@pytest.mark.parametrize("mode", ["memory", "durable"])
async def test_dropped_transport_is_recovered(faultlab: Any, mode: str) -> None:
    outcome = await faultlab.run(level="exactly-once", recovery=mode, faults=DROP_ALL,
                                 thresholds={"min_recovered_ratio": 1.0}, **SPREAD)
    assert outcome.metrics["recovered"] >= outcome.metrics["clients"]


@pytest.mark.process
@pytest.mark.parametrize("mode, recovers", [("memory", False), ("durable", True)])
async def test_recovery_across_a_restart(faultlab: Any, mode: str, recovers: bool) -> None:
    """The reconnect storm after a graceful restart: memory state is gone, durable state
    is not; server delivery fills the gap either way. The storm is measured in
    `recovery_time` (seconds from the restart to every client being back)."""
    outcome = await faultlab.run(
        level="exactly-once", recovery=mode,
        faults=[{"at": 0.4, "duration": 0.2, "kind": "restart"}],
        thresholds={"min_recovered_ratio": 0.5} if recovers else {}, **SPREAD)
    recovered = outcome.metrics["recovered"]
    assert (recovered > 0) is recovers, f"recovered {recovered} with {mode} recovery"
    assert outcome.metrics["recovery_time"], "the reconnect storm was measured"


@pytest.mark.client
async def test_past_the_recovery_window(faultlab: Any) -> None:
    """Offline longer than the recovery window: not recovered, caught up from the store."""
    window = 0.5
    outcome = await faultlab.run(
        level="exactly-once", recovery="memory",
        faults=[{"at": 0.3, "duration": window * 3, "kind": "offline", "target": "group:0"}],
        **{**SPREAD, "knobs": {**KNOBS, "recovery_window": window}})
    assert outcome.metrics["recovered"] == 0


@pytest.mark.client
async def test_repeated_recoveries_of_one_client(faultlab: Any) -> None:
    outcome = await faultlab.run(
        level="exactly-once", recovery="memory",
        faults=[{"at": at, "kind": "drop_transport", "target": "client:c0"}
                for at in (0.2, 0.6, 1.0)],
        thresholds={"min_recovered_ratio": 1.0}, **SPREAD)
    assert outcome.metrics["recovered"] >= 3


@pytest.mark.client
async def test_client_that_received_nothing_before_it_dropped(faultlab: Any) -> None:
    """Dropped before any message arrived: no offset to recover from, nothing missed."""
    await faultlab.run(
        level="exactly-once", recovery="memory",
        faults=[{"at": 0.0, "kind": "drop_transport", "target": "client:c0"}],
        **{**SPREAD, "rate": 2.0})


@pytest.mark.failpoint
async def test_retries_after_a_reconnect(faultlab: Any) -> None:
    """Acks held past the ack timeout, then the transport drops: the retries go out on
    the new connection and are deduplicated by their client offsets."""
    outcome = await faultlab.run(
        level="exactly-once", recovery="memory",
        faults=[{"at": 0.2, "duration": 1.0, "kind": "failpoint",
                 "params": {"name": "after_commit", "action": "delay", "ms": 600,
                            "count": 2}},
                {"at": 0.3, "kind": "drop_transport", "target": "all",
                 "params": {"when": "in_flight"}}],
        **SPREAD)
    assert outcome.metrics["retries"] > 0
