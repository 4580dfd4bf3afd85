"""Schedules: one validated format, precise errors, and seeded generation."""

from __future__ import annotations

import json

import pytest

from faultlab.harness.schedule import (
    KINDS,
    ScheduleError,
    dump_schedule,
    fault_label,
    load_schedule,
    parse_schedule,
    random_schedule,
)


def test_defaults_are_filled_and_order_is_by_start() -> None:
    faults = parse_schedule([
        {"at": 2, "duration": 1, "kind": "latency", "target": "group:1",
         "params": {"latency": 50}},
        {"at": 0.5, "kind": "drop_transport", "target": "client:c3"},
        {"at": 1, "duration": 2, "kind": "kill"},
    ])
    assert [f.kind for f in faults] == ["drop_transport", "kill", "latency"]
    assert faults[1].target == "server"
    assert faults[2].params == {"latency": 50, "jitter": 0, "stream": "both", "toxicity": 1.0}
    assert faults[0].duration == 0.0  # an instant fault has no duration


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"at": 1, "kind": "flood"}, "faults[0].kind: 'flood' is not a fault kind"),
        ({"kind": "kill"}, "faults[0].at: missing"),
        ({"at": -1, "kind": "kill"}, "faults[0].at: expected seconds >= 0, got -1"),
        ({"at": True, "kind": "kill"}, "faults[0].at: expected seconds >= 0, got True"),
        ({"at": 1, "kind": "kill", "target": "group:0"},
         "faults[0].target: 'group:0' does not fit kind 'kill' (expected one of: server)"),
        ({"at": 1, "kind": "latency", "params": {"latency": "lots"}},
         "faults[0].params.latency: expected int or float, got 'lots'"),
        ({"at": 1, "kind": "latency", "params": {"stream": "sideways"}},
         "faults[0].params.stream: 'sideways' is not one of both, upstream, downstream"),
        ({"at": 1, "kind": "latency", "params": {"rate": 3}},
         "faults[0].params.rate: unknown for kind 'latency'"),
        ({"at": 1, "kind": "failpoint", "params": {"name": "before_insert"}},
         "faults[0].params.action: required for kind 'failpoint'"),
        ({"at": 1, "kind": "failpoint", "params": {"name": "x", "action": "crash"}},
         "faults[0].params.name: 'x' is not one of before_insert"),
        ({"at": 1, "kind": "kill", "when": "in_flight"}, "faults[0]: unknown key 'when'"),
        ({"at": 1, "kind": "refresh", "params": {"persist_offset": 1}},
         "faults[0].params.persist_offset: expected bool, got 1"),
    ],
)
def test_bad_entries_name_the_key(entry: dict, message: str) -> None:
    with pytest.raises(ScheduleError) as info:
        parse_schedule([entry])
    assert str(info.value).startswith(message)


def test_not_a_list() -> None:
    with pytest.raises(ScheduleError, match="expected a list of faults, got str"):
        parse_schedule("kill")


def test_condition_gets_its_deadline() -> None:
    (fault,) = parse_schedule([{"at": 0, "kind": "kill", "params": {"when": "in_flight"}}])
    assert fault.when == "in_flight"
    assert fault.params["when_deadline"] == 10.0


def test_load_from_inline_json_and_file_round_trip(tmp_path) -> None:
    faults = random_schedule(7, groups=2, clients=["c0", "c1"], faults=6)
    text = json.dumps(dump_schedule(faults))
    assert load_schedule(text) == faults
    path = tmp_path / "faults.json"
    path.write_text(text)
    assert load_schedule(str(path)) == faults


def test_load_errors_name_the_source(tmp_path) -> None:
    with pytest.raises(ScheduleError, match=r"nope\.json: cannot read the schedule"):
        load_schedule(str(tmp_path / "nope.json"))
    with pytest.raises(ScheduleError, match="inline JSON: not valid JSON"):
        load_schedule("[{")
    with pytest.raises(ScheduleError, match=r"inline JSON: faults\[0\]\.kind"):
        load_schedule('[{"at": 1, "kind": "boom"}]')


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    a = random_schedule(42, length=20, faults=8, groups=3, clients=["c0", "c1", "c2"])
    b = random_schedule(42, length=20, faults=8, groups=3, clients=["c0", "c1", "c2"])
    c = random_schedule(43, length=20, faults=8, groups=3, clients=["c0", "c1", "c2"])
    assert a == b
    assert a != c
    assert all(0 <= f.at <= 20 for f in a)


def test_random_schedules_cover_every_kind_and_stay_valid() -> None:
    seen = set()
    for seed in range(60):
        faults = random_schedule(seed, faults=5, groups=2, clients=["c0"])
        assert parse_schedule(dump_schedule(faults)) == faults
        seen.update(f.kind for f in faults)
    assert seen == set(KINDS) - {"leave"}


def test_random_schedule_restricted_kinds() -> None:
    faults = random_schedule(1, faults=10, kinds=["pause", "partition"])
    assert {f.kind for f in faults} <= {"pause", "partition"}
    with pytest.raises(ScheduleError, match="'nap' is not a fault kind"):
        random_schedule(1, kinds=["nap"])


def test_fault_label() -> None:
    faults = parse_schedule([{"at": 0, "kind": "partition"}, {"at": 1, "kind": "kill"},
                             {"at": 2, "kind": "partition"}])
    assert fault_label(faults) == "partition+kill"
    assert fault_label([]) == "none"
