"""Random fault schedules: Hypothesis draws them, a warm cluster runs them, and a failing
one is shrunk to a minimal schedule printed as a scenario and a replay command.

The cost of a random example is the cluster start (server + proxy, seconds on a busy
machine), so one cluster stays up across examples (`WarmCluster`): each example is
`run.run_on` on that cluster, the same code a cold `faultlab run` goes through, with
fresh clients, its own run directory and `run_start.store_max_id` = the store's
highest id at that moment (rows of earlier examples are not its rows). A fault that
killed, paused or armed the server is undone before the next example starts.
Hypothesis only sees a pure function of the schedule (results are cached per
schedule), and the minimal schedule is reported only after a second run of it fails
too (`confirm`), so a timing accident is never printed as a finding.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from faultlab.harness.cluster import Cluster
from faultlab.harness.processes import Supervisor
from faultlab.harness.run import RunParams, new_cluster, prepare, run_on
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.schedule import (
    FAILPOINTS,
    KINDS,
    Fault,
    dump_schedule,
    parse_fault,
    random_schedule,
)
from faultlab.harness.targets import KNOBS as TARGET_KNOBS
from faultlab.harness.targets import load_target

# What exactly-once + strict must survive: every fault kind but two. `leave` (a client
# that leaves is not expected to converge) and `refresh` (a new page drops the unsent
# in-memory outbox: DESIGN §1 lists it among what exactly-once cannot save, and the
# checker rightly counts those messages as lost). Ordered simplest first, so that
# shrinking (which moves towards the first kind) ends on the plainest failing fault.
SAFE_KINDS: tuple[str, ...] = (
    "drop_transport", "partition", "offline", "blackhole", "latency",
    "reset_peer", "slow_close", "limit_data", "slicer", "bandwidth", "restart", "kill",
    "pause", "store_lock", "store_error", "failpoint",
)
CONFIRM_TRIES = 3  # failing schedules re-run, smallest first, to confirm one
STEP = 0.05  # seconds: start times and durations are drawn on this grid
EXAMPLE_KNOBS: dict[str, float] = {
    "ping_interval": 0.5, "ping_timeout": 1.0, "recovery_window": 5.0, "busy_timeout": 0.3,
}


@dataclass(frozen=True)
class ExploreConfig:
    """What to explore: the workload of every example, the fault space, the budget."""

    target: str = "reference"
    level: str = "exactly-once"
    receive: str = "strict"
    clients: int = 4
    groups: int = 2
    rate: float = 6.0  # messages per second per client ...
    duration: float = 1.5  # ... for this many seconds: faults land mid-traffic
    knobs: dict[str, float] = field(default_factory=lambda: dict(EXAMPLE_KNOBS))
    ack_timeout: float = 0.4
    quiesce_deadline: float = 10.0
    mutation: str | None = None  # a planted bug of the reference server (docs/server.md)
    kinds: tuple[str, ...] = SAFE_KINDS
    max_faults: int = 3
    horizon: float = 1.5  # faults start within [0, horizon] seconds
    min_duration: float = 0.1
    max_duration: float = 0.8  # sub-second faults keep an example cheap
    examples: int = 20  # Hypothesis max_examples
    seed: int = 0  # the Hypothesis seed; example k runs with run seed `run_seed(seed, k)`
    confirm: bool = True  # the reported schedule must fail on a second run too
    shrink_budget: float = 90.0  # seconds of shrinking after the first failure
    # Shrinking stops at the first failing schedule of at most this many faults (0: it
    # goes on, within the budget, to the simplest start times, durations and kinds).
    shrink_to_faults: int = 0

    def __post_init__(self) -> None:
        for kind in self.kinds:
            if kind not in KINDS:
                raise ValueError(f"kinds: {kind!r} is not a fault kind")
        if not self.kinds:
            raise ValueError("kinds: must not be empty")
        if not 0 < self.min_duration <= self.max_duration:
            raise ValueError("durations: need 0 < min_duration <= max_duration")
        if self.max_faults < 1 or self.examples < 1:
            raise ValueError("max_faults and examples must be >= 1")
        if self.shrink_to_faults < 0:
            raise ValueError("shrink_to_faults must be >= 0")
        unknown = set(self.knobs) - set(TARGET_KNOBS)
        if unknown:
            raise ValueError(f"knobs: unknown {sorted(unknown)[0]!r} ({', '.join(TARGET_KNOBS)})")


# -- the strategy --------------------------------------------------------------------------


def _targets(config: ExploreConfig, kind: str) -> st.SearchStrategy[str]:
    family = KINDS[kind].family
    if family == "network":
        return st.sampled_from(["all", *(f"group:{g}" for g in range(config.groups))])
    if family == "client":
        return st.sampled_from(["all", *(f"client:c{i}" for i in range(config.clients))])
    return st.just({"process": "server", "failpoint": "server", "store": "store"}[family])


def _steps(seconds: float) -> int:
    return round(seconds / STEP)


@st.composite
def _fault(draw: st.DrawFn, config: ExploreConfig) -> Fault:
    """One fault: Hypothesis draws the kind, target and timing; the parameters come from
    the seeded generator of `schedule.py` (its small, recoverable values)."""
    kind = draw(st.sampled_from(config.kinds))
    target = draw(_targets(config, kind))
    at = draw(st.integers(0, _steps(config.horizon))) * STEP
    duration = draw(st.integers(_steps(config.min_duration), _steps(config.max_duration))) * STEP
    params_seed = draw(st.integers(0, 2**16 - 1))
    drawn = random_schedule(params_seed, faults=1, kinds=[kind], groups=config.groups)[0]
    entry = {**drawn.to_json(), "at": round(at, 3), "duration": round(duration, 3),
             "target": target}
    return parse_fault(entry)


def schedules(config: ExploreConfig) -> st.SearchStrategy[list[Fault]]:
    """Schedules of 1..max_faults faults, overlapping freely, ordered by start time."""
    return st.lists(_fault(config), min_size=1, max_size=config.max_faults).map(
        lambda faults: sorted(faults, key=lambda f: (f.at, f.kind))
    )


# -- the warm cluster ----------------------------------------------------------------------


def example_params(config: ExploreConfig, schedule: Sequence[Fault], seed: int,
                   out: Path | None = None) -> RunParams:
    """The run parameters of one example: what it runs, what params.json and the replay
    command say (the server's timers and the mutation included)."""
    c = config
    server_args: list[str] = []
    server_env: dict[str, str] = {}
    if c.mutation is not None:
        server_args = ["--mutation", c.mutation]
        server_env = {"FAULTLAB_ALLOW_MUTATIONS": "1"}
    return RunParams(
        level=c.level, receive=c.receive, target=c.target, clients=c.clients,
        groups=c.groups, rate=c.rate, duration=c.duration, schedule=list(schedule),
        seed=seed, out=out, ack_timeout=c.ack_timeout, knobs=dict(c.knobs),
        server_args=server_args, server_env=server_env,
        quiesce_deadline=c.quiesce_deadline, scenario="random-schedule",
    )


@dataclass(frozen=True)
class Example:
    """One schedule run once: where it ran and what the checker said."""

    schedule: list[Fault]
    seed: int  # the run seed: `faultlab run --seed` replays the run with it
    run_dir: Path
    valid: bool | str
    counts: dict[str, int]
    seconds: float

    @property
    def failed(self) -> bool:
        return self.valid is False


class WarmCluster:
    """One server + proxies kept up across examples; each example is its own run
    (`run.run_on` on this cluster)."""

    def __init__(self, config: ExploreConfig, out: Path) -> None:
        self.config = config
        self.out = out
        self.target = load_target(config.target)
        self.cluster: Cluster | None = None
        self.runs = 0
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> WarmCluster:
        template = self.params([], self.config.seed)
        try:
            sup = await self._stack.enter_async_context(Supervisor())
            self.cluster = await self._stack.enter_async_context(
                new_cluster(template, self.target, create_run_dir(self.out / "cluster"), sup))
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    def params(self, schedule: Sequence[Fault], seed: int,
               out: Path | None = None) -> RunParams:
        """The run parameters of one example (see `example_params`)."""
        return example_params(self.config, schedule, seed, out)

    async def _ready(self) -> None:
        """Undo whatever the previous example left: a stopped or paused server, armed
        failpoints, proxy toxics. The next example starts from a healthy cluster."""
        cluster = self.cluster
        assert cluster is not None and cluster.server is not None
        if cluster.server.paused:
            await cluster.server.resume()
        if not cluster.server.running:
            await cluster.start_server()
        if cluster.admin_url is not None:
            armed = (await cluster.failpoints()).get("armed", {})
            for name in FAILPOINTS:
                if name in armed:
                    await cluster.arm_failpoint(name, "off")
        if cluster.proxies is not None:
            await cluster.proxies.control.heal()
        await cluster.health()

    async def run(self, schedule: Sequence[Fault]) -> Example:
        """Run one example: fresh clients and run directory, the shared cluster."""
        cluster = self.cluster
        assert cluster is not None
        self.runs += 1
        started = time.monotonic()
        # Each run has its own seed: clients draw their page ids (the base of their
        # client offsets) from it, and the store is shared, so two runs with one seed
        # would reuse offsets that an earlier run stored (acked as duplicates, lost).
        seed = run_seed(self.config.seed, self.runs)
        params = self.params(schedule, seed, self.out / "examples" / f"{self.runs:04d}")
        _, run = prepare(params)
        await self._ready()
        run_dir = await run_on(cluster, params, run)
        verdict = orjson.loads((run_dir / "verdict.json").read_bytes())
        counts = {k: v["count"] for k, v in verdict.get("violations", {}).items()
                  if v.get("count")}
        return Example(list(schedule), seed, run_dir, verdict.get("valid", "unknown"), counts,
                       time.monotonic() - started)


# -- the search ----------------------------------------------------------------------------


class ScheduleFailed(AssertionError):
    """Raised inside the Hypothesis property when an example's verdict is invalid."""

    def __init__(self, example: Example) -> None:
        schedule = schedule_json(example.schedule)
        super().__init__(f"invalid verdict {example.counts} under {schedule}")
        self.example = example


@dataclass
class Exploration:
    """What one exploration found, and what it cost."""

    config: ExploreConfig
    examples: int = 0  # distinct schedules Hypothesis asked for
    runs: int = 0  # cluster runs, confirmations included
    skipped: int = 0  # shrink candidates not run: the budget was spent, or small enough
    unconfirmed: list[Example] = field(default_factory=list)  # failed once, not twice
    inconclusive: list[Example] = field(default_factory=list)  # quiescence did not converge
    first_failure: Example | None = None
    found_after: float | None = None  # seconds from the start to the first failure
    found_at_example: int | None = None
    minimal: Example | None = None  # the confirming run of the smallest failing schedule
    shrinks: int = 0  # failing schedules seen after the first (each a shrink candidate)
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        return self.minimal is not None

    def replay_command(self) -> str:
        """`faultlab run ...` that replays the minimal schedule (its run seed included)."""
        assert self.minimal is not None
        return replay_command(self.config, self.minimal)

    def replay_argv(self) -> list[str]:
        assert self.minimal is not None
        return replay_argv(self.config, self.minimal)

    def snippet(self) -> str:
        assert self.minimal is not None
        return scenario_snippet(self.config, self.minimal)


def schedule_json(schedule: Sequence[Fault]) -> str:
    return orjson.dumps(dump_schedule(schedule)).decode()


class _Search:
    """The Hypothesis property over a warm cluster that lives on another event loop."""

    def __init__(self, warm: WarmCluster, loop: asyncio.AbstractEventLoop) -> None:
        self.warm = warm
        self.loop = loop
        self.config = warm.config
        self.result = Exploration(warm.config)
        self.cache: dict[str, Example] = {}
        self.failures: list[Example] = []
        self.t0 = time.monotonic()
        self.stop = threading.Event()

    def _run(self, schedule: list[Fault]) -> Example:
        if self.stop.is_set():
            raise KeyboardInterrupt("exploration cancelled")
        future = asyncio.run_coroutine_threadsafe(self.warm.run(schedule), self.loop)
        self.result.runs += 1
        return future.result()

    def _outcome(self, schedule: list[Fault]) -> Example | None:
        key = schedule_json(schedule)
        if key in self.cache:
            return self.cache[key]
        if self._done_shrinking():
            self.result.skipped += 1
            return None
        self.result.examples += 1
        example = self._run(schedule)
        self.cache[key] = example
        if example.valid == "unknown":
            self.result.inconclusive.append(example)
        if example.failed:
            self.failures.append(example)
            if self.result.first_failure is None:
                self.result.first_failure = example
                self.result.found_after = time.monotonic() - self.t0
                self.result.found_at_example = self.result.examples
            else:
                self.result.shrinks += 1
        return example

    def _done_shrinking(self) -> bool:
        """Past the shrink budget, or a failing schedule is already small enough: the
        remaining candidates count as passing without a run, and the best one stands."""
        found = self.result.found_after
        if found is None:
            return False
        if time.monotonic() - self.t0 - found > self.config.shrink_budget:
            return True
        enough = self.config.shrink_to_faults
        return enough > 0 and any(len(f.schedule) <= enough for f in self.failures)

    def _confirmed(self, minimal: Example) -> Example | None:
        """The smallest failing schedule that fails again when run a second time.

        Shrinking trusts single runs (each costs seconds); the one reported must not be
        a timing accident, so it is run again, falling back to the next smallest."""
        if not self.config.confirm:
            return minimal
        candidates = [minimal, *sorted((f for f in self.failures if f is not minimal),
                                       key=lambda f: (len(f.schedule), schedule_json(f.schedule)))]
        for example in candidates[:CONFIRM_TRIES]:
            again = self._run(example.schedule)
            if again.failed:
                return again
            self.result.unconfirmed.append(example)
        return None

    def search(self) -> Exploration:
        c = self.config

        @settings(max_examples=c.examples, database=None, deadline=None, derandomize=False,
                  phases=(Phase.generate, Phase.shrink), report_multiple_bugs=False,
                  suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                  print_blob=False)
        @hypothesis_seed(c.seed)
        @given(schedules(c))
        def property_no_violation(schedule: list[Fault]) -> None:
            example = self._outcome(schedule)
            if example is not None and example.failed:
                raise ScheduleFailed(example)

        try:
            property_no_violation()
        except ScheduleFailed as exc:
            self.result.minimal = self._confirmed(exc.example)
        self.result.seconds = time.monotonic() - self.t0
        return self.result


async def explore(config: ExploreConfig, out: Path) -> Exploration:
    """Search for a schedule that breaks the target at `config.level`; shrink it.

    Hypothesis runs in a worker thread (it is synchronous); every example runs on this
    event loop, on one warm cluster that is torn down when the search ends or fails.
    """
    out.mkdir(parents=True, exist_ok=True)
    loop = asyncio.get_running_loop()
    async with WarmCluster(config, out) as warm:
        search = _Search(warm, loop)
        task = asyncio.ensure_future(asyncio.to_thread(search.search))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            search.stop.set()
            with contextlib.suppress(BaseException):
                await task
            raise


# -- printing a minimal schedule -------------------------------------------------------------


def run_seed(seed: int, run: int) -> int:
    """The run seed of the `run`-th example of an exploration with this seed."""
    return seed * 100_000 + run


def replay_command(config: ExploreConfig, example: Example) -> str:
    """The `faultlab run` command that runs an example exactly as the explorer ran it
    (on a cold cluster of its own): one self-contained command line."""
    return example_params(config, example.schedule, example.seed).replay()


def replay_argv(config: ExploreConfig, example: Example) -> list[str]:
    return example_params(config, example.schedule, example.seed).argv()


def scenario_snippet(config: ExploreConfig, example: Example) -> str:
    """A ready-to-run scenario (a pytest test using the `faultlab` fixture)."""
    p = example_params(config, example.schedule, example.seed)
    faults = ",\n".join(f"            {_entry(f)}" for f in p.schedule)
    server = ""
    if p.server_args or p.server_env:
        server = f"        server_args={p.server_args!r},\n        server_env={p.server_env!r},\n"
    return (
        "import pytest\n\n\n"
        "@pytest.mark.random\n"
        "async def test_minimal_random_schedule(faultlab):\n"
        "    await faultlab.run(\n"
        f"        target={p.target!r}, level={p.level!r}, receive={p.receive!r},\n"
        f"        clients={p.clients}, groups={p.groups}, rate={p.rate!r}, "
        f"duration={p.duration!r}, seed={p.seed},\n"
        f"        knobs={p.knobs!r},\n"
        f"        ack_timeout={p.ack_timeout!r}, reconnect_delay={p.reconnect_delay!r}, "
        f"quiesce_deadline={p.quiesce_deadline!r},\n"
        f"{server}"
        "        faults=[\n"
        f"{faults},\n"
        "        ],\n"
        "    )\n"
    )


def _entry(fault: Fault) -> str:
    data = fault.to_json()
    params = {k: v for k, v in data["params"].items()
              if KINDS[fault.kind].params.get(k) is None
              or v != KINDS[fault.kind].params[k].default}
    entry: dict[str, Any] = {"at": data["at"], "kind": data["kind"], "target": data["target"]}
    if not KINDS[fault.kind].instant:
        entry["duration"] = data["duration"]
    if params:
        entry["params"] = params
    return repr(entry)


def describe(result: Exploration) -> str:
    """A short human summary: what was tried, what was found, how to replay it."""
    lines = [f"explored {result.examples} schedule(s) in {result.runs} run(s), "
             f"{result.seconds:.1f}s (seed {result.config.seed})"]
    if result.unconfirmed:
        lines.append(f"  {len(result.unconfirmed)} failure(s) did not reproduce (ignored)")
    if result.inconclusive:
        lines.append(f"  {len(result.inconclusive)} example(s) did not quiesce (inconclusive)")
    if result.minimal is None:
        lines.append("  no failing schedule found")
        return "\n".join(lines)
    first = result.first_failure
    assert first is not None
    lines += [
        f"  first failure after {result.found_after:.1f}s (example {result.found_at_example}, "
        f"{len(first.schedule)} fault(s)), shrunk to {len(result.minimal.schedule)} "
        f"fault(s) through {result.shrinks} smaller failing schedule(s)"
        + (f", {result.skipped} candidate(s) not run" if result.skipped else ""),
        f"  violations: {result.minimal.counts}",
        f"  run directory: {result.minimal.run_dir}",
        "  replay:",
        "    " + result.replay_command(),
        "  scenario:",
        *("    " + line if line else "" for line in result.snippet().splitlines()),
    ]
    return "\n".join(lines)
