"""The faultlab pytest plugin (entry point `pytest11`): the fixture, the options, the gate.

A scenario is one call: ``await faultlab.run(level=..., faults=[...], expect=[...])``.
The plugin brings the cluster up and down (through `run_scenario`), runs the checker,
judges the scenario's expectation and thresholds (`gate`), records the outcome in the
run directory, and fails the test with a message that says what broke and how to
replay it. At the end of the session it renders the delivery report and the CI step
summary. It works in any repository that installs faultlab, and under pytest-xdist.
"""

from __future__ import annotations

import os
import shlex
import shutil
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from faultlab import loops
from faultlab.harness.gate import (
    KINDS,
    Expectation,
    GateConfigError,
    Judgement,
    judge,
    merge_thresholds,
    project_thresholds,
)
from faultlab.harness.scale import SCALES

MARKERS = {
    "client": "client faults (transport close, offline, refresh)",
    "network": "network faults through the proxy",
    "process": "server process faults (kill -9, restart, pause)",
    "store": "store faults (lock, failing store)",
    "failpoint": "failpoints armed in the server",
    "recovery": "connection state recovery",
    "matrix": "the guarantee matrix (levels x faults)",
    "mutation": "planted server bugs the suite must catch",
    "interop": "the official JS client or the Node peer target",
    "random": "random fault schedules (Hypothesis)",
    "at_most_once": "delivery level at-most-once",
    "buffered": "delivery level buffered",
    "at_least_once": "delivery level at-least-once",
    "exactly_once": "delivery level exactly-once",
}
_RUNS_KEY = pytest.StashKey[list[dict[str, Any]]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faultlab", "faultlab reliability scenarios")
    group.addoption("--faultlab-report", metavar="DIR", type=Path, default=None,
                    help="keep every run directory under DIR/runs and write the delivery "
                         "report (index.html, results.json, summary.md) into DIR")
    group.addoption("--faultlab-seed", metavar="N", type=int, default=None,
                    help="seed for every scenario (default: derived from the test id, "
                         "so each scenario is replayable)")
    group.addoption("--faultlab-target", metavar="FILE", default=None,
                    help="target file or shipped target name (default: reference)")
    group.addoption("--faultlab-scale", choices=sorted(SCALES), default="ci",
                    help="workload size: ci (small, fast) or soak (10x the clients, "
                         "20x the messages, 4x the sending time of every scenario)")
    group.addoption("--faultlab-loop", choices=loops.LOOPS, default=loops.DEFAULT_LOOP,
                    help="event loop the scenarios' harness runs on (default: "
                         f"{loops.DEFAULT_LOOP}; uvloop costs the harness 13-15 %% less CPU "
                         "per received message)")


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
    config.stash[_RUNS_KEY] = []
    report = config.getoption("--faultlab-report", None)
    if report is not None and not _is_worker(config):
        # the report describes this session only: runs of an earlier one are cleared
        shutil.rmtree(Path(report) / "runs", ignore_errors=True)


def pytest_asyncio_loop_factories(config: pytest.Config,
                                  item: pytest.Item) -> dict[str, Any]:
    """Scenarios (tests using the `faultlab` fixture) run on `--faultlab-loop`; every
    other async test keeps asyncio's own loop, so installing faultlab changes nothing
    for a project's unrelated tests. (pytest-asyncio asks this hook for every item.)"""
    if "faultlab" not in getattr(item, "fixturenames", ()):
        return {"asyncio": loops.loop_factory("asyncio")}
    name = config.getoption("--faultlab-loop")
    try:
        return {name: loops.loop_factory(name)}
    except loops.LoopUnavailable as exc:
        raise pytest.UsageError(f"--faultlab-loop {name}: {exc}") from None


@dataclass(frozen=True)
class Outcome:
    """One finished scenario: where it is, what the checker and the gate said."""

    run_dir: Path
    params: dict[str, Any]
    verdict: dict[str, Any]
    judgement: Judgement

    def count(self, kind: str) -> int:
        return int(self.verdict["violations"][kind]["count"])

    @property
    def metrics(self) -> dict[str, Any]:
        return self.verdict.get("metrics", {})


class Faultlab:
    """The `faultlab` fixture: runs scenarios for one test and gates them."""

    def __init__(self, request: pytest.FixtureRequest) -> None:
        self.request = request
        self.config = request.config
        nodeid = request.node.nodeid
        self.nodeid = nodeid
        seed = self.config.getoption("--faultlab-seed")
        self.seed = seed if seed is not None else zlib.crc32(nodeid.encode()) % 2**31
        self.target = self.config.getoption("--faultlab-target") or "reference"
        self.scale_name = self.config.getoption("--faultlab-scale")
        self.scale = SCALES[self.scale_name]
        self._runs = 0

    def replay(self) -> str:
        """The one command that replays this test with the same seed."""
        argv = ["pytest", self.nodeid, "--faultlab-seed", str(self.seed)]
        target = self.config.getoption("--faultlab-target")
        if target:
            argv += ["--faultlab-target", target]
        if self.scale_name != "ci":
            argv += ["--faultlab-scale", self.scale_name]
        return shlex.join(argv)

    def _out(self) -> Path:
        self._runs += 1
        name = _slug(self.nodeid) + (f"-{self._runs}" if self._runs > 1 else "")
        report = self.config.getoption("--faultlab-report")
        if report is not None:
            return Path(report) / "runs" / name
        return self.request.getfixturevalue("tmp_path_factory").mktemp(name[:60])

    async def run(
        self,
        *,
        expect: Iterable[str] = (),
        tolerate: Iterable[str] = (),
        thresholds: dict[str, float] | None = None,
        faults: Sequence[dict[str, Any]] = (),
        gate: bool = True,
        **params: Any,
    ) -> Outcome:
        """Run one scenario, check it, and (with `gate`) fail the test if it broke."""
        from faultlab.harness.run import RunParams, run_scenario
        from faultlab.harness.schedule import parse_fault

        try:
            expectation = Expectation.of(expect, tolerate)
            limits = merge_thresholds(
                project_thresholds(self.config.rootpath / "pyproject.toml"), thresholds
            )
        except GateConfigError as exc:
            pytest.fail(f"faultlab: {exc}", pytrace=False)
        run_params = RunParams(
            **self.scale.apply({"target": self.target, "seed": self.seed, **params}),
            schedule=[parse_fault(f, f"faults[{i}]") for i, f in enumerate(faults)],
            out=self._out(), scenario=self.nodeid, expected=sorted(expectation.must),
            thresholds=limits,
        )
        run_dir = await run_scenario(run_params)
        verdict = orjson.loads((run_dir / "verdict.json").read_bytes())
        judgement = judge(verdict, expectation, limits)
        recorded = _record_outcome(run_dir, expectation, judgement, self.replay())
        self.config.stash[_RUNS_KEY].append({"nodeid": self.nodeid, "run_dir": str(run_dir),
                                             "passed": judgement.passed})
        outcome = Outcome(run_dir, recorded, verdict, judgement)
        if gate and not judgement.passed:
            pytest.fail(failure_message(outcome, self.seed, self.replay()), pytrace=False)
        return outcome


def _slug(text: str) -> str:
    keep = [c if c.isalnum() or c in "-_." else "-" for c in text.replace("::", "--")]
    return "".join(keep).strip("-")[:120]


def _record_outcome(run_dir: Path, expectation: Expectation, judgement: Judgement,
                    replay: str) -> dict[str, Any]:
    """The gate's decision goes into params.json so the report shows the same word."""
    path = run_dir / "params.json"
    params = orjson.loads(path.read_bytes())
    params.update(expectation.as_params())
    params.update(outcome="pass" if judgement.passed else "fail",
                  gate={"problems": judgement.problems, "crossed": judgement.crossed},
                  replay_scenario=replay)
    path.write_bytes(orjson.dumps(params, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return params


def failure_message(outcome: Outcome, seed: int, replay: str, first: int = 3) -> str:
    """Which invariant broke, how many messages, the first few lifecycles, how to replay."""
    lines = [f"faultlab gate failed for {outcome.params.get('scenario')}"]
    lines += [f"  - {p}" for p in outcome.judgement.problems]
    lines += [f"  - threshold crossed: {c}" for c in outcome.judgement.crossed]
    for kind in KINDS:
        entry = outcome.verdict["violations"][kind]
        if not entry["count"]:
            continue
        lines.append(f"  {kind}: {entry['count']} message(s); first:")
        for message in entry["messages"][:first]:
            lines.append(f"    {_describe(message)}")
    lines += [f"  seed: {seed}", f"  run directory: {outcome.run_dir}", f"  replay: {replay}"]
    return "\n".join(lines)


def _describe(message: dict[str, Any]) -> str:
    steps = []
    for event in message.get("lifecycle", [])[:8]:
        detail = {k: v for k, v in event.items() if k not in ("t", "op", "actor", "content")}
        extra = " ".join(f"{k}={v}" for k, v in detail.items() if v is not None)
        steps.append(f"{event.get('t', 0):.3f}s {event.get('actor', '')} {event.get('op')}"
                     + (f" {extra}" if extra else ""))
    faults = ", ".join(str(f.get("kind", f)) if isinstance(f, dict) else str(f)
                       for f in message.get("faults", []))
    head = f"{message.get('msg') or '-'} {message.get('content')!r}"
    clients = message.get("clients")
    return (head + (f" clients={clients}" if clients else "")
            + (f" faults=[{faults}]" if faults else "") + ": " + "; ".join(steps))


@pytest.fixture
def faultlab(request: pytest.FixtureRequest) -> Faultlab:
    """Run reliability scenarios: ``outcome = await faultlab.run(level=..., faults=[...])``."""
    return Faultlab(request)


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Render the delivery report and the CI step summary once, on the controller."""
    config = session.config
    report = config.getoption("--faultlab-report")
    if _is_worker(config) or report is None:
        return
    runs = Path(report) / "runs"
    run_dirs = sorted(p for p in runs.glob("*") if (p / "verdict.json").is_file())
    if not run_dirs:
        return
    from faultlab.reports import render

    index = render(run_dirs, Path(report))
    config.stash.setdefault(_RUNS_KEY, []).append({"report": str(index)})
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as fh:
            fh.write((index.parent / "summary.md").read_text(encoding="utf-8") + "\n")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    entries = config.stash.get(_RUNS_KEY, [])
    runs = [e for e in entries if "run_dir" in e]
    reports = [e["report"] for e in entries if "report" in e]
    if not runs and not reports:
        return
    terminalreporter.section("faultlab")
    if runs:
        failed = sum(1 for e in runs if not e["passed"])
        terminalreporter.write_line(f"{len(runs)} scenario run(s), {failed} failed the gate")
    for index in reports:
        terminalreporter.write_line(f"delivery report: {index}")
