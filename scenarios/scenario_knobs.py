"""Timer knobs shared by the reliability suite: every timer a scenario waits on is short.

The defaults of a real deployment (25 s ping interval, 2 min recovery window, 5 s busy
timeout) would make each scenario wait minutes; these knobs keep each one to a few
seconds while preserving the order of events the scenario relies on.
"""

from __future__ import annotations

from typing import Any

# Server timers (seconds): a dead peer is noticed within ~1 s, the store gives up on a
# held write lock after 0.3 s, a recovery session outlives a short disconnection.
KNOBS: dict[str, float] = {
    "ping_interval": 0.5,
    "ping_timeout": 1.0,
    "recovery_window": 5.0,
    "busy_timeout": 0.3,
}
# Client timers: retry an unacknowledged send after 0.4 s, reconnect after 50 ms.
FAST: dict[str, Any] = {"knobs": KNOBS, "ack_timeout": 0.4, "reconnect_delay": 0.05}
# A workload spread over 1.5 s (6 messages/s per client), so a fault started at
# 0.3-0.5 s lands mid-traffic.
SPREAD: dict[str, Any] = {**FAST, "rate": 6.0, "duration": 1.5}
