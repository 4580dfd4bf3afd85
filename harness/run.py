"""One recorded run: cluster up, clients connected, workload + nemesis, heal, quiesce,
snapshot, check.

There is one way a run goes, `run_on(cluster, params)`, on a cluster that is already
up. `run_scenario(params)` brings a cluster up for it and down again (a cold run: the
pytest plugin and `faultlab run`); the random-schedule explorer keeps one cluster up
and calls `run_on` once per example (a warm run). `faultlab run` is the command line,
and `RunParams.argv()` is the command that replays a run, self-contained.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import click
import orjson

from faultlab import loops
from faultlab.harness.clients.base import (
    LEVELS,
    OFFSET_STYLES,
    RECEIVE_POLICIES,
    RECOVERY_MODES,
    TRANSPORTS,
    ChatClient,
    ClientConfig,
)
from faultlab.harness.cluster import Cluster, ClusterError
from faultlab.harness.history import History
from faultlab.harness.nemesis import Nemesis
from faultlab.harness.processes import ChildFailed, Supervisor, kill_leftovers
from faultlab.harness.rundir import (
    RunDir,
    create_run_dir,
    replay_command,
    update_params,
    write_params,
)
from faultlab.harness.schedule import Fault, ScheduleError, dump_schedule, fault_label
from faultlab.harness.schedule import load_schedule as _load_schedule
from faultlab.harness.store import max_id
from faultlab.harness.targets import KNOBS, Target, TargetError, load_target

CLIENT_KINDS = ("lean", "official")


@dataclass
class RunParams:
    """Everything a run needs; what params.json records (plus versions and replay)."""

    level: str = "exactly-once"
    receive: str = "strict"
    recovery: str = "off"
    transport: str = "websocket"
    target: str = "reference"
    clients: int = 4
    messages: int = 10
    rate: float | None = None
    duration: float | None = None
    groups: int = 2
    schedule: list[Fault] = field(default_factory=list)
    seed: int = 0
    out: Path | None = None
    scenario: str | None = None
    client: str = "lean"
    ack_timeout: float = 1.0
    retries: int | None = None
    offsets: str = "sid-counter"
    reconnect_delay: float = 0.1
    knobs: dict[str, float] = field(default_factory=dict)
    server_args: list[str] = field(default_factory=list)
    server_env: dict[str, str] = field(default_factory=dict)
    quiesce_deadline: float = 20.0
    connect_deadline: float = 15.0
    expected: list[str] | None = None
    thresholds: dict[str, Any] = field(default_factory=dict)
    record: bool = True
    check: bool = True

    def validate(self) -> None:
        """Raise ValueError with a one-line reason for the first bad value."""
        for name, allowed in (("level", LEVELS), ("receive", RECEIVE_POLICIES),
                              ("recovery", RECOVERY_MODES), ("transport", TRANSPORTS),
                              ("offsets", OFFSET_STYLES), ("client", CLIENT_KINDS)):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        for name in ("clients", "groups"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be >= 1, not {getattr(self, name)}")
        if self.messages < 0:
            raise ValueError(f"messages: must be >= 0, not {self.messages}")
        if (self.rate is None) != (self.duration is None):
            raise ValueError("rate and duration go together (messages per second, for seconds)")
        for knob, seconds in self.knobs.items():
            if knob not in KNOBS:
                raise ValueError(f"knobs: unknown {knob!r} ({', '.join(KNOBS)})")
            if not seconds > 0:
                raise ValueError(f"knobs: {knob} must be > 0 seconds, not {seconds}")
        for fault in self.schedule:
            if fault.target.startswith("group:") and int(fault.target[6:]) >= self.groups:
                raise ValueError(f"schedule: {fault.kind} targets {fault.target}, but the run "
                                 f"has {self.groups} client group(s)")

    def argv(self) -> list[str]:
        """`faultlab run ...` that replays this run: every option that changes what runs
        (server timers and arguments included), so the command needs no other file."""
        argv = ["faultlab", "run", "--target", self.target, "--level", self.level,
                "--receive", self.receive, "--recovery", self.recovery,
                "--transport", self.transport, "--client", self.client,
                "--clients", str(self.clients), "--groups", str(self.groups)]
        if self.rate is not None and self.duration is not None:
            argv += ["--rate", str(self.rate), "--duration", str(self.duration)]
        else:
            argv += ["--messages", str(self.messages)]
        if self.schedule:
            argv += ["--faults", orjson.dumps(dump_schedule(self.schedule)).decode()]
        argv += ["--seed", str(self.seed), "--ack-timeout", str(self.ack_timeout)]
        if self.retries is not None:
            argv += ["--retries", str(self.retries)]
        argv += ["--offsets", self.offsets, "--reconnect-delay", str(self.reconnect_delay),
                 "--quiesce-deadline", str(self.quiesce_deadline)]
        for knob, seconds in self.knobs.items():
            argv += ["--knob", f"{knob}={seconds}"]
        argv += [f"--server-arg={arg}" for arg in self.server_args]
        for name, value in self.server_env.items():
            argv += ["--server-env", f"{name}={value}"]
        return argv

    def replay(self) -> str:
        """`argv()` as one shell command line."""
        return replay_command(self.argv())


Progress = Callable[[str, dict[str, Any]], None]


def _quiet(phase: str, info: dict[str, Any]) -> None:
    """The progress callback of a run nobody watches."""


def _params_json(p: RunParams, target: Target) -> dict[str, Any]:
    data = asdict(p)
    data.pop("out")
    data.update(
        target=target.name, target_file=str(target.source),
        schedule=dump_schedule(p.schedule), fault_kind=fault_label(p.schedule),
        replay=p.replay(),
    )
    return data


def _unsupported(target: Target, params: RunParams) -> str | None:
    """Why this target cannot run these params, or None."""
    reason = target.supports(params.level, params.recovery)
    if reason is None and target.failpoints is None:
        for fault in params.schedule:
            if fault.kind in ("failpoint", "store_error"):
                return (f"schedule: {fault.kind} needs failpoints, and target "
                        f"{target.name!r} has none")
    return reason


def prepare(params: RunParams) -> tuple[Target, RunDir]:
    """Validate the params against their target, create the run directory and write
    params.json, before anything starts (a run that cannot start still says what it
    was asked to do). Raises ValueError (or TargetError) with a one-line reason."""
    params.validate()
    target = load_target(params.target)
    reason = _unsupported(target, params)
    if reason is not None:
        raise ValueError(reason)
    run = create_run_dir(params.out, params.scenario or f"{target.name}-{params.level}")
    write_params(run, _params_json(params, target))
    return target, run


def new_cluster(params: RunParams, target: Target, run: RunDir,
                supervisor: Supervisor) -> Cluster:
    """The cluster these params run on (enter it with `async with` to start it). Its
    logs go to `run`; a warm cluster gets a run directory of its own."""
    return Cluster(run, target, params.level, params.recovery, groups=params.groups,
                   knobs=params.knobs, server_env=params.server_env,
                   server_args=params.server_args, supervisor=supervisor, seed=params.seed)


def _mismatch(cluster: Cluster, target: Target, params: RunParams) -> str | None:
    """What the cluster runs that the params do not say (params.json must not lie)."""
    pairs = (("target", cluster.target.source, target.source),
             ("level", cluster.level, params.level),
             ("recovery", cluster.recovery, params.recovery),
             ("groups", cluster.groups, params.groups),
             ("knobs", cluster.knobs, params.knobs),
             ("server_args", cluster.server_args, params.server_args),
             ("server_env", cluster.server_env, params.server_env))
    for name, running, asked in pairs:
        if running != asked:
            return f"run_on: the cluster runs {name}={running!r}, the params say {asked!r}"
    return None


def check(run: RunDir) -> dict[str, Any]:
    """Run the checker on a run directory; returns the verdict it wrote."""
    from faultlab.harness.checker import check_run

    check_run(run.path)
    return orjson.loads((run.path / "verdict.json").read_bytes())


async def run_on(cluster: Cluster, params: RunParams, run: RunDir | None = None,
                 progress: Progress | None = None) -> Path:
    """One run on a cluster that is up: clients, workload + nemesis, heal, quiesce,
    snapshot, check. Returns the run directory (`run`, or a new one from `params.out`).

    `run_start.store_max_id` is the store's highest id now, so rows of earlier runs on
    the same cluster are not this run's. The clients are closed on the way out, on
    success, failure and cancellation; the cluster is the caller's, and the nemesis
    leaves it healed as far as it can (a warm caller checks the rest).
    """
    reason = _mismatch(cluster, load_target(params.target), params)
    if reason is not None:
        raise ValueError(reason)
    if run is None:
        _, run = prepare(params)
    say = progress or _quiet
    rng = random.Random(params.seed)
    history = History(run.history if params.record else None)
    async with history, contextlib.AsyncExitStack() as stack:
        store_max = await asyncio.to_thread(max_id, cluster.target.store, cluster.db)
        update_params(run, versions={"proxy": cluster.proxy_label})
        history.record("harness", "run_start", store_max_id=store_max)
        clients = await _make_clients(params, cluster, run, history, stack, rng)
        say("connecting", {"clients": len(clients)})
        await asyncio.gather(*(c.start() for c in clients))
        await _wait_connected(clients, params.connect_deadline)
        workload = _workload(params, history, clients, run.path.name)
        nemesis = Nemesis(cluster, clients, history, params.schedule, seed=params.seed)
        stack.push_async_callback(nemesis.close)
        say("running", {"workload": workload, "nemesis": nemesis, "history": history})
        nemesis.start()
        await workload.run()
        await nemesis.wait()
        say("quiescing", {})
        await nemesis.heal_all()
        ok = await workload.quiesce(cluster.store_ids, params.quiesce_deadline)
        rows = await cluster.snapshot(run.store)
        say("stopping", {"quiesced": ok, "rows": len(rows), "errors": nemesis.errors})
        for error in nemesis.errors:
            print(f"faultlab: fault not applied: {error}", file=sys.stderr)
    if params.check:
        say("checking", {})
        verdict = await asyncio.to_thread(check, run)
        say("done", {"verdict": verdict, "run_dir": str(run.path)})
    return run.path


async def run_scenario(params: RunParams, progress: Progress | None = None) -> Path:
    """Run one scenario end to end on a cluster of its own; return its run directory.

    Everything started here is stopped here, on success, failure and cancellation.
    """
    target, run = prepare(params)
    say = progress or _quiet
    async with Supervisor() as sup:
        say("starting", {"run_dir": str(run.path)})
        async with new_cluster(params, target, run, sup) as cluster:
            return await run_on(cluster, params, run, say)


async def _wait_connected(clients: Sequence[ChatClient], deadline: float) -> None:
    end = time.monotonic() + deadline
    while not all(c.connected for c in clients):
        if time.monotonic() > end:
            missing = [c.config.id for c in clients if not c.connected]
            raise TimeoutError(f"{len(missing)} client(s) not connected within {deadline:.0f}s: "
                               f"{', '.join(missing[:10])}")
        await asyncio.sleep(0.02)


async def _make_clients(params: RunParams, cluster: Cluster, run: RunDir, history: History,
                        stack: contextlib.AsyncExitStack,
                        rng: random.Random) -> list[ChatClient]:
    configs = [
        ClientConfig(
            id=f"c{i}", url=cluster.client_url(i), level=params.level, receive=params.receive,
            recovery=params.recovery, transport=params.transport,
            ack_timeout=params.ack_timeout, retries=params.retries, offsets=params.offsets,
            reconnect_delay=params.reconnect_delay,
        )
        for i in range(params.clients)
    ]
    clients: list[ChatClient]
    if params.client == "official":
        from faultlab.harness.clients.official import OfficialWorker

        worker = await stack.enter_async_context(
            OfficialWorker(cluster.supervisor, history, run.log("js-worker"))
        )
        clients = [worker.client(c) for c in configs]
    else:
        from faultlab.harness.clients.lean import LeanClient

        http = await stack.enter_async_context(
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        )
        clients = [LeanClient(c, history, http=http, rng=random.Random(rng.random()))
                   for c in configs]
    for client in clients:
        stack.push_async_callback(client.close)
    return clients


def _workload(params: RunParams, history: History, clients: list[ChatClient],
              run_id: str) -> Any:
    from faultlab.harness.workload import Workload

    return Workload(history, clients, params.messages, rate=params.rate,
                    duration=params.duration, seed=params.seed, run_id=run_id)


# -- the command line ---------------------------------------------------------------------


def _schedule(ctx: click.Context, param: click.Parameter, value: str | None) -> list[Fault]:
    if value is None:
        return []
    try:
        return _load_schedule(value)
    except ScheduleError as exc:
        raise click.BadParameter(str(exc)) from None


def _pairs(values: Sequence[str]) -> list[tuple[str, str]]:
    out = []
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r}: expected NAME=VALUE")
        out.append((name, rest))
    return out


def _knobs(ctx: click.Context, param: click.Parameter,
           values: Sequence[str]) -> dict[str, float]:
    knobs = {}
    for name, text in _pairs(values):
        if name not in KNOBS:
            raise click.BadParameter(f"{name!r} is not a timer knob ({', '.join(KNOBS)})")
        try:
            seconds = float(text)
        except ValueError:
            raise click.BadParameter(f"{name}: {text!r} is not a number of seconds") from None
        if not seconds > 0:
            raise click.BadParameter(f"{name}: must be > 0 seconds, not {text}")
        knobs[name] = seconds
    return knobs


def _env(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, str]:
    return dict(_pairs(values))


def params_from_options(options: dict[str, Any]) -> RunParams:
    """The RunParams of parsed `faultlab run` options (the inverse of `RunParams.argv`)."""
    o = dict(options)
    o.pop("loop_name", None)  # how this process runs, not what the run is
    o["schedule"] = o.pop("faults")
    o["check"] = not o.pop("no_check")
    o["server_args"] = list(o.pop("server_arg"))
    o["server_env"] = o.pop("server_env")
    o["knobs"] = o.pop("knob")
    return RunParams(**o)


class _Display:
    """A one-line rich status of the run, refreshed while it runs."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.status = console.status("starting")
        self.info: dict[str, Any] = {}
        self.phase = "starting"
        self.t0 = time.monotonic()

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        self.phase = phase
        self.info.update(info)
        if phase == "starting":
            self.console.print(f"run directory: {info['run_dir']}")
        self.refresh()

    def refresh(self) -> None:
        parts = [f"[bold]{self.phase}[/]", f"{time.monotonic() - self.t0:5.1f}s"]
        if (h := self.info.get("history")) is not None:
            parts.append(f"{h.count} events")
        if (n := self.info.get("nemesis")) is not None:
            active = ", ".join(a.fault.kind for a in n.active.values()) or "none"
            parts.append(f"faults active: {active}")
        self.status.update("  ".join(parts))


def _summary(console: Any, verdict: dict[str, Any] | None, quiesced: bool | None) -> None:
    if quiesced is False:
        console.print("[yellow]quiescence did not converge before the deadline[/]")
    if verdict is None:
        console.print("checker: not available (no verdict written)")
        return
    bad = {k: v.get("count", 0) for k, v in verdict.get("violations", {}).items()
           if v.get("count", 0)}
    valid = verdict.get("valid")
    colour = "green" if valid is True else "red" if valid is False else "yellow"
    console.print(f"verdict: [{colour}]valid={valid}[/]"
                  + ("  " + ", ".join(f"{k}={n}" for k, n in bad.items()) if bad else ""))


@click.command()
@click.option("--target", default="reference", show_default=True,
              help="Target file, or a shipped target's name (reference, node-peer).")
@click.option("--level", type=click.Choice(LEVELS), default="exactly-once", show_default=True)
@click.option("--receive", type=click.Choice(RECEIVE_POLICIES), default="strict",
              show_default=True)
@click.option("--recovery", type=click.Choice(RECOVERY_MODES), default="off", show_default=True)
@click.option("--transport", type=click.Choice(TRANSPORTS), default="websocket",
              show_default=True)
@click.option("--client", type=click.Choice(CLIENT_KINDS), default="lean", show_default=True,
              help="Simulated clients: the lean Python client or the official JS client.")
@click.option("--clients", type=click.IntRange(1), default=4, show_default=True)
@click.option("--messages", type=click.IntRange(0), default=10, show_default=True,
              help="Messages per client.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Messages per second per client (with --duration) instead of --messages.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--groups", type=click.IntRange(1), default=2, show_default=True,
              help="Client groups (one proxy each), so a subset can be cut off.")
@click.option("--faults", callback=_schedule, default=None,
              help="Fault schedule: a JSON file or inline JSON (see docs/engine.md).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--ack-timeout", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True)
@click.option("--retries", type=click.IntRange(0), default=None,
              help="Retries per message at the acked levels (default: until acked).")
@click.option("--offsets", type=click.Choice(OFFSET_STYLES), default="sid-counter",
              show_default=True, help="How exactly-once clients make their client offsets.")
@click.option("--reconnect-delay", type=click.FloatRange(min=0), default=0.1,
              show_default=True, help="Seconds before a client reconnects.")
@click.option("--knob", multiple=True, callback=_knobs, metavar="NAME=SECONDS",
              help=f"A server timer knob (repeatable): {', '.join(KNOBS)}.")
@click.option("--server-arg", multiple=True, metavar="ARG",
              help="An argument appended to the target's start command (repeatable); "
                   "e.g. --server-arg=--mutation --server-arg=no_dedupe.")
@click.option("--server-env", multiple=True, callback=_env, metavar="NAME=VALUE",
              help="An environment variable of the server (repeatable).")
@click.option("--quiesce-deadline", type=click.FloatRange(min=0), default=20.0,
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run directory (or a folder for a new one); default: a temporary folder.")
@click.option("--no-check", is_flag=True, help="Do not run the checker at the end.")
@click.option("--loop", "loop_name", type=click.Choice(loops.LOOPS), default=loops.DEFAULT_LOOP,
              show_default=True, help="The harness's event loop.")
def command(loop_name: str, **options: Any) -> None:
    """Run a workload against a target under a fault schedule, record it, check it."""
    from rich.console import Console

    params = params_from_options(options)
    try:
        loops.loop_factory(loop_name)
        params.validate()
        reason = _unsupported(load_target(params.target), params)
    except (ValueError, TargetError, loops.LoopUnavailable) as exc:
        raise click.UsageError(str(exc)) from None
    if reason is not None:
        raise click.UsageError(reason)
    console = Console(stderr=True)
    display = _Display(console)
    try:
        with display.status:
            run_dir = loops.run(_with_ticker(params, display), loop_name)
    except KeyboardInterrupt:
        console.print("interrupted: every process was stopped")
        sys.exit(130)
    except (ChildFailed, ClusterError, TimeoutError) as exc:
        console.print(f"[red]run failed:[/] {exc}", markup=True, highlight=False)
        console.print(f"run directory: {display.info.get('run_dir')}")
        sys.exit(1)
    _summary(console, display.info.get("verdict"), display.info.get("quiesced"))
    click.echo(str(run_dir))


STOP_DEADLINE = 15.0
"""Seconds Ctrl-C gives the graceful stop (clients, checker, children) before it is forced."""


def _force_stop_after(seconds: float) -> None:
    """Ctrl-C must end a run even if some teardown step hangs.

    If the process is still alive `seconds` after the first Ctrl-C, every thread's
    stack goes to stderr (so the hang can be found and fixed), every child's process
    group is killed, and the process exits 130 as an interrupted run does.
    """
    def force() -> None:
        print(f"faultlab: the run did not stop within {seconds:g}s of Ctrl-C; "
              "where each thread was:", file=sys.stderr, flush=True)
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        kill_leftovers()
        os._exit(130)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def _arm_stop_deadline() -> None:
    """Chain a stop deadline in front of asyncio.run's own Ctrl-C handler."""
    handler = signal.getsignal(signal.SIGINT)
    if not callable(handler):
        return

    def on_sigint(signum: int, frame: Any) -> None:
        _force_stop_after(STOP_DEADLINE)
        handler(signum, frame)

    signal.signal(signal.SIGINT, on_sigint)


async def _with_ticker(params: RunParams, display: _Display) -> Path:
    _arm_stop_deadline()

    async def tick() -> None:
        while True:
            await asyncio.sleep(0.25)
            display.refresh()

    ticker = asyncio.create_task(tick())
    try:
        return await run_scenario(params, display)
    finally:
        ticker.cancel()
