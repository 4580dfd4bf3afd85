"""Client faults (DESIGN §3.5): what a browser does to a chat — drop, go offline, refresh.

Exactly-once with server delivery must come through every one of them clean; the
weak levels' expected failures under the same faults are in the guarantee matrix.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_knobs import FAST, SPREAD

pytestmark = [pytest.mark.client]


@pytest.mark.exactly_once
async def test_abrupt_close_mid_traffic(faultlab: Any) -> None:
    """The transport dies with a send in flight: the retry after reconnecting is deduped."""
    outcome = await faultlab.run(
        level="exactly-once",
        faults=[{"at": 0.2, "kind": "drop_transport", "target": "all",
                 "params": {"when": "in_flight"}}],
        **SPREAD,
    )
    assert outcome.metrics["reconnects"] >= outcome.metrics["clients"]


@pytest.mark.buffered
async def test_offline_while_sending_is_buffered(faultlab: Any) -> None:
    """Emits made while offline are queued and sent on reconnect: nothing lost."""
    outcome = await faultlab.run(
        level="buffered",
        faults=[{"at": 0.3, "duration": 0.6, "kind": "offline", "target": "group:0"}],
        **SPREAD,
    )
    assert outcome.metrics["give_ups"] == 0


@pytest.mark.exactly_once
@pytest.mark.parametrize("persist", [True, False], ids=["persisted-offset", "from-zero"])
async def test_page_refresh(faultlab: Any, persist: bool) -> None:
    """A refresh starts a new display session: from the persisted offset it catches up
    on what it missed, from zero it gets everything; either way nothing is missing."""
    outcome = await faultlab.run(
        level="exactly-once",
        faults=[{"at": 0.5, "kind": "refresh", "target": "group:1",
                 "params": {"persist_offset": persist}}],
        **SPREAD,
    )
    assert outcome.metrics["sessions"] > outcome.metrics["clients"]


@pytest.mark.exactly_once
async def test_many_clients_reconnect_at_once(faultlab: Any) -> None:
    """Every client drops at the same instant and reconnects together (a storm)."""
    outcome = await faultlab.run(
        level="exactly-once", clients=16, messages=3,
        faults=[{"at": 0.0, "kind": "drop_transport", "target": "all",
                 "params": {"when": "in_flight"}}],
        **FAST,
    )
    assert outcome.metrics["reconnects"] >= 16


@pytest.mark.exactly_once
@pytest.mark.parametrize("transport", ["polling", "upgrade"])
async def test_polling_and_upgrade_transports(faultlab: Any, transport: str) -> None:
    """Long-polling (and polling upgraded to websocket) survive a drop mid-traffic."""
    await faultlab.run(
        level="exactly-once", transport=transport,
        faults=[{"at": 0.4, "kind": "drop_transport", "target": "all"}],
        **SPREAD,
    )
