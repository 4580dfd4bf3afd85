"""Network faults through the proxy (DESIGN §3.5): exactly-once comes through clean.

Clients are spread over two group proxies, so a fault can cut one group while the
other carries on. Each fault starts mid-traffic and is healed before quiescence.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_knobs import SPREAD

pytestmark = [pytest.mark.network, pytest.mark.exactly_once]


def _fault(kind: str, duration: float = 0.6, target: str = "all", at: float = 0.3,
           **params: Any) -> dict[str, Any]:
    return {"at": at, "duration": duration, "kind": kind, "target": target, "params": params}


# Faults of one family share a run where they do not interfere (different groups, or
# one after the other), which keeps the suite fast; the checker names the faults whose
# window overlaps each message, so a failure still points at its fault.
NETWORK: dict[str, list[dict[str, Any]]] = {
    # One group cut, then every client cut.
    "partition-one-group-then-all": [_fault("partition", 0.4, "group:0", at=0.2),
                                     _fault("partition", 0.4, at=0.9)],
    # One direction only: group 0's sends vanish while its broadcasts still arrive;
    # group 1 sees the opposite.
    "one-direction": [_fault("blackhole", 0.6, "group:0", stream="upstream"),
                      _fault("blackhole", 0.6, "group:1", stream="downstream")],
    # Data stops (the peer looks alive to TCP) until the ping timeout notices.
    "blackhole-then-heal": [_fault("blackhole", 1.5, at=0.2)],
    # A slow, chopped, narrow link: latency with jitter on one group, the slicer on the
    # other, then a bandwidth limit on both.
    "latency-slicer-bandwidth": [
        _fault("latency", 0.7, "group:0", at=0.1, latency=150, jitter=100),
        _fault("slicer", 0.7, "group:1", at=0.1, average_size=8, size_variation=4, delay=200),
        _fault("bandwidth", 0.5, at=0.9, rate=2),
    ],
    # Connections reset (RST) on one group, cut after a few hundred bytes on the other,
    # then closed slowly on both.
    "reset-limit-slow-close": [
        _fault("reset_peer", 0.3, "group:0", at=0.2, timeout=100),
        _fault("limit_data", 0.4, "group:1", at=0.2, bytes=512),
        _fault("slow_close", 0.4, at=0.8, delay=300),
        {"at": 0.85, "kind": "drop_transport", "target": "all"},
    ],
    # A flapping link: down 0.2 s, up 0.2 s, three times.
    "flapping": [_fault("partition", 0.2, "group:1", at=0.2 + 0.4 * i) for i in range(3)],
}


@pytest.mark.parametrize("name", list(NETWORK))
async def test_network_fault(faultlab: Any, name: str) -> None:
    await faultlab.run(level="exactly-once", faults=NETWORK[name], **SPREAD)


@pytest.mark.at_most_once
async def test_partition_loses_at_most_once(faultlab: Any) -> None:
    """The same partition at at-most-once must lose what the cut group sent meanwhile."""
    outcome = await faultlab.run(level="at-most-once",
                                 faults=[_fault("partition", target="group:0")],
                                 expect=["lost"], **SPREAD)
    assert outcome.count("lost") < outcome.metrics["sends"]
