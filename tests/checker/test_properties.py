"""Properties: a correct history is always valid; one planted defect is always caught,
under the kind DESIGN's precedence gives it, and nothing else is blamed."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from faultlab.harness.checker import check_run
from faultlab.harness.checker.synth import DEFECTS, ORDERED_LEVELS, Spec, generate, plant, write_run

specs = st.builds(
    Spec,
    seed=st.integers(0, 2**32 - 1),
    clients=st.integers(2, 6),
    messages=st.integers(4, 40),
    pre_rows=st.integers(0, 3),
    level=st.sampled_from(ORDERED_LEVELS),
    fault_every=st.sampled_from([0, 4, 10]),
    retry=st.sampled_from([0.0, 0.2]),
    ack_lost=st.sampled_from([0.0, 0.2]),
    give_up_stored=st.sampled_from([0.0, 0.1]),
    reject=st.sampled_from([0.0, 0.1]),
    refresh=st.sampled_from([0.0, 0.15]),
    refresh_from_zero=st.sampled_from([0.0, 0.5]),
    leave=st.sampled_from([0.0, 0.1]),
    redeliver=st.sampled_from([0.0, 0.6]),
    recovered=st.sampled_from([0.0, 0.5, 1.0]),
)

SETTINGS = settings(max_examples=15, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _judge(events, rows, level: str):
    with tempfile.TemporaryDirectory() as tmp:
        return check_run(write_run(Path(tmp), events, rows, {"level": level}))


@SETTINGS
@given(spec=specs)
def test_a_correct_history_is_always_valid(spec: Spec):
    events, rows = generate(spec)
    v = _judge(events, rows, spec.level)
    assert {k: s["count"] for k, s in v["violations"].items() if s["count"]} == {}
    assert v["valid"] is True
    assert v["warnings"] == []


@settings(max_examples=32, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs, defect=st.sampled_from(sorted(DEFECTS)), seed=st.integers(0, 1000))
def test_one_planted_defect_is_caught_under_its_kind_and_nothing_else(
        spec: Spec, defect: str, seed: int):
    events, rows = generate(spec)
    planted = plant(defect, events, rows, seed)
    if planted is None:
        return
    events, rows, content, kind = planted
    v = _judge(events, rows, spec.level)
    assert v["valid"] is False
    flagged = {(k, m["content"]) for k, s in v["violations"].items() for m in s["messages"]}
    assert flagged == {(kind, content)}
