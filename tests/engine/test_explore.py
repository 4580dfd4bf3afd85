"""Random schedules: the strategy stays inside the fault space, the search shrinks and
confirms, and the printed scenario and replay command say exactly what ran."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.harness.explore import (
    SAFE_KINDS,
    Example,
    ExploreConfig,
    _Search,
    describe,
    example_params,
    replay_argv,
    scenario_snippet,
    schedules,
)
from faultlab.harness.run import RunParams, params_from_options
from faultlab.harness.run import command as run_command
from faultlab.harness.schedule import KINDS, Fault, parse_schedule

CONFIG = ExploreConfig(clients=3, groups=2, max_faults=3, horizon=1.5, max_duration=0.8)


@settings(max_examples=200, deadline=None)
@given(schedules(CONFIG))
def test_drawn_schedules_stay_inside_the_configured_fault_space(schedule: list[Fault]) -> None:
    assert 1 <= len(schedule) <= CONFIG.max_faults
    assert [f.at for f in schedule] == sorted(f.at for f in schedule)
    for fault in schedule:
        assert fault.kind in SAFE_KINDS and fault.kind not in ("leave", "refresh")
        assert 0 <= fault.at <= CONFIG.horizon
        if KINDS[fault.kind].instant:
            assert fault.duration == 0
        else:
            assert CONFIG.min_duration <= fault.duration <= CONFIG.max_duration
    # every drawn schedule is one a run accepts, and survives its JSON form unchanged
    RunParams(clients=CONFIG.clients, groups=CONFIG.groups, schedule=schedule).validate()
    assert parse_schedule([f.to_json() for f in schedule]) == schedule


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_a_restricted_kind_list_is_respected(data: st.DataObject) -> None:
    config = ExploreConfig(kinds=("partition", "kill"), groups=1)
    schedule = data.draw(schedules(config))
    assert {f.kind for f in schedule} <= {"partition", "kill"}
    assert all(f.target in ("all", "group:0", "server") for f in schedule)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kinds": ("boom",)}, "kinds: 'boom' is not a fault kind"),
        ({"kinds": ()}, "kinds: must not be empty"),
        ({"min_duration": 0.0}, "need 0 < min_duration <= max_duration"),
        ({"max_faults": 0}, "max_faults and examples must be >= 1"),
        ({"shrink_to_faults": -1}, "shrink_to_faults must be >= 0"),
        ({"knobs": {"ping": 1.0}}, "knobs: unknown 'ping'"),
    ],
)
def test_a_bad_configuration_is_refused_with_its_reason(changes: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ExploreConfig(**changes)


def test_an_example_runs_the_reference_server_with_the_timers_and_the_mutation() -> None:
    config = ExploreConfig(mutation="no_dedupe", knobs={"ping_interval": 0.5,
                                                        "busy_timeout": 0.3})
    params = example_params(config, [], 17)
    assert params.target == "reference"
    assert params.knobs == {"ping_interval": 0.5, "busy_timeout": 0.3}
    assert params.server_args == ["--mutation", "no_dedupe"]
    assert params.server_env == {"FAULTLAB_ALLOW_MUTATIONS": "1"}
    plain = example_params(ExploreConfig(), [], 17)
    assert plain.server_args == [] and plain.server_env == {}


SCHEDULE = parse_schedule([
    {"at": 0.1, "duration": 0.3, "kind": "blackhole", "target": "group:1",
     "params": {"stream": "downstream"}},
    {"at": 0.45, "kind": "refresh", "target": "client:c2", "params": {"persist_offset": False}},
])
EXAMPLE = Example(SCHEDULE, 4200017, Path("run"), False, {"duplicated_stored": 2}, 2.5)


def test_the_replay_command_is_self_contained_and_says_exactly_what_ran() -> None:
    """No file beside it: `faultlab run`'s own parser turns the printed command back into
    the very parameters the example ran with (timers and mutation included)."""
    config = ExploreConfig(seed=42, mutation="no_dedupe")
    argv = replay_argv(config, EXAMPLE)
    assert argv[:2] == ["faultlab", "run"]
    assert "--server-arg=--mutation" in argv and "--server-arg=no_dedupe" in argv
    ctx = run_command.make_context("run", argv[2:])
    replayed = params_from_options(ctx.params)
    ran = example_params(config, EXAMPLE.schedule, EXAMPLE.seed)
    assert replayed.schedule == SCHEDULE and replayed.seed == EXAMPLE.seed
    for name in ("target", "level", "receive", "clients", "groups", "rate", "duration",
                 "ack_timeout", "reconnect_delay", "quiesce_deadline", "knobs",
                 "server_args", "server_env"):
        assert getattr(replayed, name) == getattr(ran, name), name


def test_the_scenario_snippet_runs_the_same_schedule_through_the_fixture() -> None:
    config = ExploreConfig(seed=7, mutation="no_dedupe")
    calls: list[dict[str, Any]] = []

    class Recorder:
        """Stands in for the `faultlab` fixture: records what the scenario asks for."""

        async def run(self, **kwargs: Any) -> None:
            calls.append(kwargs)

    namespace: dict[str, Any] = {}
    exec(compile(scenario_snippet(config, EXAMPLE), "snippet.py", "exec"), namespace)
    asyncio.run(namespace["test_minimal_random_schedule"](Recorder()))
    (kwargs,) = calls
    assert parse_schedule(kwargs.pop("faults")) == SCHEDULE
    asked = RunParams(**kwargs)
    asked.validate()
    ran = example_params(config, [], EXAMPLE.seed)
    assert asked.server_args == ["--mutation", "no_dedupe"]
    for name in ("target", "level", "receive", "clients", "groups", "rate", "duration", "seed",
                 "ack_timeout", "reconnect_delay", "quiesce_deadline", "knobs",
                 "server_args", "server_env"):
        assert getattr(asked, name) == getattr(ran, name), name


# -- the search, over a stand-in for the warm cluster (pure logic) ----------------------------


@dataclass
class FakeWarm:
    """Fails a schedule when `breaks` says so; `flaky` schedules fail only once."""

    config: ExploreConfig
    breaks: Any
    flaky: Any = None
    seen: list[str] = field(default_factory=list)

    async def run(self, schedule: list[Fault]) -> Example:
        key = repr(schedule)
        again = key in self.seen
        self.seen.append(key)
        bad = self.breaks(schedule) and not (again and self.flaky and self.flaky(schedule))
        return Example(schedule, 0, Path("run"), not bad, {"duplicated_stored": 1} if bad else {},
                       0.0)


def search(warm: FakeWarm) -> Any:
    """Run `_Search` as `explore` does: examples on a loop in another thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        return _Search(warm, loop).search()  # type: ignore[arg-type]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def kill_late(schedule: list[Fault]) -> bool:
    return any(f.kind == "kill" and f.at >= 0.5 for f in schedule)


def test_a_failing_schedule_is_found_shrunk_and_confirmed() -> None:
    config = ExploreConfig(kinds=("partition", "latency", "kill"), examples=200, seed=3)
    result = search(FakeWarm(config, kill_late))
    assert result.failed
    (fault,) = result.minimal.schedule
    assert (fault.kind, fault.at) == ("kill", 0.5)  # the smallest start time that fails
    assert fault.duration == config.min_duration
    assert result.first_failure is not None and result.found_at_example >= 1
    assert result.runs == result.examples + 1  # one confirming run
    assert "shrunk to 1 fault(s)" in describe(result)


def test_shrinking_can_stop_at_a_small_enough_schedule() -> None:
    """`shrink_to_faults` ends shrinking at the first small enough failure: fewer runs,
    and what is reported is still a confirmed failure of that size."""
    config = ExploreConfig(kinds=("partition", "latency", "kill"), examples=200, seed=3)
    full = search(FakeWarm(config, kill_late))
    short = search(FakeWarm(replace(config, shrink_to_faults=1), kill_late))
    assert short.failed and len(short.minimal.schedule) == 1
    assert kill_late(short.minimal.schedule)
    assert short.skipped > 0 and short.runs < full.runs
    assert short.first_failure == full.first_failure  # the same search up to the finding
    assert "candidate(s) not run" in describe(short)


def test_the_same_seed_explores_the_same_schedules() -> None:
    config = ExploreConfig(examples=15, seed=11)
    first, second = FakeWarm(config, lambda s: False), FakeWarm(config, lambda s: False)
    search(first)
    search(second)
    assert first.seen == second.seen and len(set(first.seen)) > 10


def test_a_failure_that_does_not_reproduce_is_not_reported() -> None:
    config = ExploreConfig(kinds=("partition", "kill"), examples=100, seed=5)
    result = search(FakeWarm(config, kill_late, flaky=lambda schedule: True))
    assert not result.failed
    assert result.unconfirmed and "did not reproduce" in describe(result)


def test_a_correct_target_passes_every_example() -> None:
    config = ExploreConfig(examples=25, seed=1)
    result = search(FakeWarm(config, lambda schedule: False))
    assert not result.failed and 10 < result.examples == result.runs <= 25
    assert "no failing schedule found" in describe(result)


def test_a_cancelled_search_stops_at_the_next_example() -> None:
    """Ctrl-C or a timeout of the caller ends Hypothesis at once, not after max_examples."""
    config = ExploreConfig(examples=100, seed=1)
    warm = FakeWarm(config, lambda schedule: False)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    explorer = _Search(warm, loop)  # type: ignore[arg-type]
    real_run = warm.run

    async def run_then_cancel(schedule: list[Fault]) -> Example:
        if len(warm.seen) == 3:
            explorer.stop.set()
        return await real_run(schedule)

    warm.run = run_then_cancel  # type: ignore[method-assign]
    try:
        with pytest.raises(KeyboardInterrupt, match="exploration cancelled"):
            explorer.search()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert explorer.result.runs == 4
