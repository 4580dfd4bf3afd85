"""Store faults (DESIGN §3.5): a locked or failing store is an insert that is not acked.

Exactly-once must retry until the store is back; at-most-once, which never retries,
must lose what the store refused (or the harness would be blind to store outages).
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_knobs import KNOBS, SPREAD

pytestmark = [pytest.mark.store]

# The write lock is held for well past the server's busy timeout. Taking it starts a
# helper process, which can take a second on a loaded machine, so the workload runs
# long enough (3 s) that sends always meet the held lock.
LOCK = [{"at": 0.0, "duration": KNOBS["busy_timeout"] * 3, "kind": "store_lock"}]
LONG = {**SPREAD, "rate": 4.0, "duration": 3.0}


@pytest.mark.parametrize("level, must", [
    pytest.param("exactly-once", [], marks=pytest.mark.exactly_once),
    pytest.param("at-most-once", ["lost"], marks=pytest.mark.at_most_once),
])
async def test_write_lock_past_the_busy_timeout(faultlab: Any, level: str,
                                                must: list[str]) -> None:
    outcome = await faultlab.run(level=level, faults=LOCK, expect=must, **LONG)
    if level == "exactly-once":
        assert outcome.metrics["retries"] > 0, "the lock must have refused some insert"


@pytest.mark.exactly_once
async def test_failing_store(faultlab: Any) -> None:
    """Every insert fails for half a second."""
    outcome = await faultlab.run(
        level="exactly-once",
        faults=[{"at": 0.3, "duration": 0.5, "kind": "store_error", "params": {"count": 0}}],
        **SPREAD)
    assert outcome.metrics["retries"] > 0


@pytest.mark.exactly_once
async def test_outage_during_the_reconnect_sync(faultlab: Any) -> None:
    """Clients reconnect while the store is locked and then failing: the catch-up and
    the retried sends both wait for it."""
    outcome = await faultlab.run(
        level="exactly-once",
        faults=[{"at": 0.3, "duration": 0.8, "kind": "store_lock",
                 "params": {"mode": "exclusive"}},
                {"at": 0.35, "kind": "drop_transport", "target": "all"},
                {"at": 0.3, "duration": 0.8, "kind": "failpoint",
                 "params": {"name": "during_sync", "action": "error", "count": 2}}],
        **SPREAD)
    assert outcome.metrics["reconnects"] >= outcome.metrics["clients"]
