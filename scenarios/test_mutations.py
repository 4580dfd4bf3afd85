"""The planted bugs: every server mutation is caught, under the violation kind it plants.

A mutation is a deliberate bug in the reference server (`faultlab server
--list-mutations`). If any of these scenarios comes out clean, the harness is blind to
that class of bug. Each case gives the mutation what it needs to show (a failed
insert, a retry, a reconnect, the naive receive policy) and nothing more.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_knobs import KNOBS, SPREAD

from faultlab.server.mutations import MUTATIONS

pytestmark = [pytest.mark.mutation]

# The write lock outlives the busy timeout, so the next insert fails (the workload of
# these cases is long enough to meet the lock: its helper process can be slow to start).
STORE_LOCKED = [{"at": 0.0, "duration": KNOBS["busy_timeout"] * 3, "kind": "store_lock"}]
LONG = {**SPREAD, "rate": 4.0, "duration": 3.0}
# The next insert commits and is not acked, so the client retries it.
ACK_LOST = [{"at": 0.3, "duration": 3.0, "kind": "failpoint",
             "params": {"name": "after_commit", "action": "error"}}]
DROP_ALL = [{"at": 0.5, "kind": "drop_transport", "target": "all"}]
# One client misses 2+ rows while it is offline; the catch-up must bring them.
ONE_OFFLINE = [{"at": 0.3, "duration": 0.6, "kind": "offline", "target": "client:c0"}]

# mutation -> (level, receive policy, schedule, kinds it may cause besides its own)
CASES: dict[str, tuple[str, str, list[dict[str, Any]], list[str]]] = {
    # Acked before the commit, which the held lock then makes fail.
    "ack_before_commit": ("exactly-once", "strict", STORE_LOCKED, []),
    # A deleted row was also broadcast, so receivers hold it at an offset with no row.
    "drop_after_ack": ("exactly-once", "strict", [], []),
    # At a level that does not retry, so the dropped message is simply never stored.
    "drop_silently": ("at-most-once", "strict", [], []),
    "no_dedupe": ("exactly-once", "strict", ACK_LOST, []),
    "double_insert": ("exactly-once", "strict", [], []),
    # The held message is acked at once and committed up to 1 s later: when that is
    # after the last message, the run may quiesce (and snapshot) before it is stored.
    "commit_out_of_order": ("exactly-once", "strict", [], ["lost_acked"]),
    "phantom_row": ("exactly-once", "strict", [], []),
    "corrupt_one_client": ("exactly-once", "strict", [], []),
    # A guessed offset shown for a failed insert is taken by a later row: strict
    # receive shows each offset once, so that later row may never be shown.
    "broadcast_before_commit": ("exactly-once", "strict", STORE_LOCKED, ["never_delivered"]),
    "double_broadcast": ("exactly-once", "naive", [], []),
    "sync_from_ge": ("exactly-once", "naive", DROP_ALL, []),
    "swap_broadcasts": ("exactly-once", "strict", [], []),
    "no_sync": ("exactly-once", "strict", ONE_OFFLINE, []),
    "truncated_sync": ("exactly-once", "strict", ONE_OFFLINE, []),
    "skip_broadcast": ("exactly-once", "strict", [], []),
}


def test_every_mutation_has_a_scenario() -> None:
    assert sorted(CASES) == sorted(MUTATIONS)


@pytest.mark.parametrize("mutation", list(CASES))
async def test_mutation_is_caught(faultlab: Any, mutation: str) -> None:
    level, receive, faults, also = CASES[mutation]
    planted = MUTATIONS[mutation].kind
    await faultlab.run(
        level=level, receive=receive, faults=faults, expect=[planted], tolerate=also,
        server_args=["--mutation", mutation, "--allow-mutations"],
        quiesce_deadline=5.0, **(LONG if faults is STORE_LOCKED else SPREAD),
    )
