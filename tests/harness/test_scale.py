"""Scale: soak multiplies what a scenario asks for; CI leaves it untouched."""

from __future__ import annotations

from faultlab.harness.run import RunParams
from faultlab.harness.scale import BASE, CI, SCALES


def test_ci_scale_is_the_scenario_as_written() -> None:
    params = {"clients": 16, "messages": 3, "seed": 5}
    assert CI.apply(params) == params
    assert SCALES["ci"] is CI


def test_soak_grows_a_count_workload_and_its_deadlines() -> None:
    scaled = SCALES["soak"].apply({"clients": 16, "messages": 3, "quiesce_deadline": 5.0})
    assert (scaled["clients"], scaled["messages"]) == (160, 60)
    assert scaled["quiesce_deadline"] == 20.0
    assert scaled["connect_deadline"] == BASE["connect_deadline"] * 4


def test_soak_grows_a_rate_workload_in_clients_and_time_not_in_rate() -> None:
    scaled = SCALES["soak"].apply({"rate": 6.0, "duration": 1.5, "seed": 1})
    assert (scaled["clients"], scaled["rate"], scaled["duration"]) == (40, 6.0, 6.0)
    assert scaled["seed"] == 1
    RunParams(**scaled).validate()


def test_base_is_the_engine_default() -> None:
    defaults = RunParams()
    assert {name: getattr(defaults, name) for name in BASE} == BASE
