"""Workload scale: the same scenarios, small for CI or large for a soak.

A scale multiplies what a scenario asks for rather than replacing it, so a scenario
that sets its own clients, message count or rate still grows at soak scale. Fault
times are not scaled: a fault placed 0.3 s in still lands mid-traffic, and a longer
workload only adds traffic after it. Deadlines grow with the load they wait for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The engine's own defaults (RunParams), for scenarios that leave a field unset. Written
# out, not read from RunParams: the pytest plugin imports this module in every pytest
# run, and importing the engine would add ~0.45 s to each. tests/harness/test_scale.py
# checks that the two agree.
BASE: dict[str, Any] = {"clients": 4, "messages": 10, "quiesce_deadline": 20.0,
                        "connect_deadline": 15.0}


@dataclass(frozen=True)
class Scale:
    """Multipliers on a scenario's clients, load and deadlines."""

    clients: int = 1
    messages: int = 1
    """Count workloads: messages per client."""
    duration: float = 1.0
    """Rate workloads: seconds of sending at the scenario's per-client rate."""
    deadlines: float = 1.0

    def apply(self, params: dict[str, Any]) -> dict[str, Any]:
        """The scenario's run parameters at this scale (a new dict)."""
        if self == CI:
            return dict(params)
        scaled = {**BASE, **params}
        scaled["clients"] = int(scaled["clients"]) * self.clients
        scaled["messages"] = int(scaled["messages"]) * self.messages
        if scaled.get("duration") is not None:
            scaled["duration"] = float(scaled["duration"]) * self.duration
        for name in ("quiesce_deadline", "connect_deadline"):
            scaled[name] = float(scaled[name]) * self.deadlines
        return scaled


CI = Scale()
SCALES: dict[str, Scale] = {
    "ci": CI,
    # 40 clients instead of 4, 200 messages each instead of 10, rate workloads 4x longer
    "soak": Scale(clients=10, messages=20, duration=4.0, deadlines=4.0),
}
