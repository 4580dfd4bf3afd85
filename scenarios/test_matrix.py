"""The guarantee matrix: every delivery level under the key faults (DESIGN §3.2).

Each cell says what the level promises under that fault: clean, or the violation
kinds that MUST appear (a weak level that comes out clean where loss is predicted
means the harness went blind, and fails the suite). A few kinds are tolerated where
they depend on timing rather than on the level, each with its reason below.
"""

from __future__ import annotations

from typing import Any

import pytest
from scenario_knobs import SPREAD

pytestmark = [pytest.mark.matrix]

# fault name -> (family marker, schedule). Every fault lands mid-traffic and is
# triggered by a condition where it must hit one message (the next insert).
FAULTS: dict[str, tuple[str, list[dict[str, Any]]]] = {
    # 0.6 s offline while the client keeps sending.
    "offline": ("client", [{"at": 0.3, "duration": 0.6, "kind": "offline", "target": "all"}]),
    # The next insert fails (the store refuses it once).
    "store_error": ("store", [{"at": 0.3, "duration": 0.5, "kind": "store_error",
                               "params": {"count": 1}}]),
    # The next insert commits, then the server fails before acking it.
    "ack_lost": ("failpoint", [{"at": 0.3, "duration": 3.0, "kind": "failpoint",
                                "params": {"name": "after_commit", "action": "error"}}]),
    # The server process crashes on the next insert, before it commits.
    "crash_before_insert": ("process", [{"at": 0.3, "duration": 3.0, "kind": "failpoint",
                                         "params": {"name": "before_insert",
                                                    "action": "crash"}}]),
}

LOSS = ["lost"]
# Where a fault cuts a connection while an acknowledged level has a message in flight,
# whether that message had already been stored (so its retry is stored again) depends
# on where it was when the connection went: at-least-once MAY duplicate there.
RETRY_DUP = ["duplicated_stored"]

# level -> fault -> (must appear, may appear)
MATRIX: dict[str, dict[str, tuple[list[str], list[str]]]] = {
    "at-most-once": {
        "offline": (LOSS, []),
        "store_error": (LOSS, []),
        "ack_lost": ([], []),
        "crash_before_insert": (LOSS, []),
    },
    "buffered": {
        "offline": ([], []),
        "store_error": (LOSS, []),
        "ack_lost": ([], []),
        "crash_before_insert": (LOSS, []),
    },
    "at-least-once": {
        "offline": ([], RETRY_DUP),
        "store_error": ([], []),
        "ack_lost": (["duplicated_stored"], []),
        "crash_before_insert": ([], RETRY_DUP),
    },
    "exactly-once": {
        "offline": ([], []),
        "store_error": ([], []),
        "ack_lost": ([], []),
        "crash_before_insert": ([], []),
    },
}


def _cases() -> list[Any]:
    cases = []
    for level, row in MATRIX.items():
        for fault, (must, may) in row.items():
            family, _ = FAULTS[fault]
            marks = [getattr(pytest.mark, level.replace("-", "_")), getattr(pytest.mark, family)]
            cases.append(pytest.param(level, fault, must, may, marks=marks,
                                      id=f"{level}-{fault}"))
    return cases


@pytest.mark.parametrize(("level", "fault", "must", "may"), _cases())
async def test_guarantee_matrix(faultlab: Any, level: str, fault: str, must: list[str],
                                may: list[str]) -> None:
    _, schedule = FAULTS[fault]
    await faultlab.run(level=level, faults=schedule, expect=must, tolerate=may, **SPREAD)
