"""A recorded run end to end: `run_scenario` and the `faultlab run` command."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from faultlab.harness.processes import Supervisor
from faultlab.harness.run import (
    RunParams,
    command,
    new_cluster,
    params_from_options,
    prepare,
    run_on,
    run_scenario,
)
from faultlab.harness.schedule import parse_schedule
from faultlab.harness.targets import load_target

FAST = {"knobs": {"ping_interval": 1.0, "ping_timeout": 1.0}, "ack_timeout": 0.5,
        "reconnect_delay": 0.05, "quiesce_deadline": 10.0}


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line]


async def test_a_run_under_a_partition_is_recorded_and_checked(tmp_path: Path) -> None:
    schedule = parse_schedule([{"at": 0.0, "duration": 0.4, "kind": "partition",
                                "target": "group:0"}])
    run_dir = await run_scenario(RunParams(
        clients=3, messages=4, groups=2, schedule=schedule, seed=5, out=tmp_path / "run",
        scenario="test-partition", **FAST))
    assert run_dir == (tmp_path / "run").resolve()
    params = orjson.loads((run_dir / "params.json").read_bytes())
    assert params["history_format"] == 1
    assert params["fault_kind"] == "partition"
    assert params["schedule"] == [f.to_json() for f in schedule]
    assert "--faults" in params["replay"] and "--seed 5" in params["replay"]
    assert params["versions"]["proxy"].startswith("embedded (Toxiproxy API 2.")
    history = lines(run_dir / "history.jsonl")
    ops = [e["op"] for e in history]
    assert ops[0] == "run_start" and history[0]["store_max_id"] == 0
    assert ops.count("send") == 12
    assert [e["op"] for e in history if e["actor"] == "nemesis"] == ["fault_start", "fault_end"]
    assert [e["ok"] for e in history if e["op"] == "quiesce_end"] == [True]
    store = lines(run_dir / "store.jsonl")
    assert sorted(r["content"] for r in store) == sorted(
        e["content"] for e in history if e["op"] == "send")
    verdict = orjson.loads((run_dir / "verdict.json").read_bytes())
    assert verdict["valid"] is True
    assert (run_dir / "logs" / "server.log").exists() and (run_dir / "logs" / "proxy.log").exists()


async def test_a_run_that_cannot_converge_says_so(tmp_path: Path) -> None:
    """A server without catch-up: a client cut off while others send never converges."""
    schedule = parse_schedule([{"at": 0.0, "duration": 0.5, "kind": "partition",
                                "target": "group:0"}])
    run_dir = await run_scenario(RunParams(
        clients=2, messages=3, groups=2, schedule=schedule, out=tmp_path / "run",
        server_args=["--mutation", "no_sync"], server_env={"FAULTLAB_ALLOW_MUTATIONS": "1"},
        **{**FAST, "quiesce_deadline": 1.0}, rate=None, duration=None))
    history = lines(run_dir / "history.jsonl")
    assert [e["ok"] for e in history if e["op"] == "quiesce_end"] == [False]
    verdict = orjson.loads((run_dir / "verdict.json").read_bytes())
    assert verdict["violations"]["never_delivered"]["count"] > 0
    assert verdict["valid"] == "unknown"


async def test_runs_on_one_warm_cluster_are_separate_runs(tmp_path: Path) -> None:
    """`run_on` twice on one cluster: the second run's rows are its own (store_max_id),
    and params that differ from what the cluster runs are refused before anything."""
    params = RunParams(clients=2, messages=3, seed=1, **FAST)
    target, run = prepare(replace(params, out=tmp_path / "cluster"))
    async with Supervisor() as sup, new_cluster(params, target, run, sup) as cluster:
        first = await run_on(cluster, replace(params, out=tmp_path / "a"))
        second = await run_on(cluster, replace(params, seed=2, out=tmp_path / "b"))
        with pytest.raises(ValueError, match=r"the cluster runs knobs=\{.*\}, the params say \{\}"):
            await run_on(cluster, replace(params, knobs={}, out=tmp_path / "c"))
    assert not (tmp_path / "c").exists()
    assert lines(first / "history.jsonl")[0]["store_max_id"] == 0
    assert lines(second / "history.jsonl")[0]["store_max_id"] == 6
    assert len(lines(second / "store.jsonl")) == 12
    for run_dir in (first, second):
        assert orjson.loads((run_dir / "verdict.json").read_bytes())["valid"] is True


@pytest.mark.node
async def test_a_run_against_the_node_peer_completes(tmp_path: Path) -> None:
    schedule = parse_schedule([{"at": 0.05, "kind": "drop_transport", "target": "all"}])
    run_dir = await run_scenario(RunParams(
        target="node-peer", recovery="memory", clients=2, messages=4, schedule=schedule,
        out=tmp_path / "run", **FAST))
    assert orjson.loads((run_dir / "params.json").read_bytes())["target"] == "node-peer"
    assert orjson.loads((run_dir / "verdict.json").read_bytes())["valid"] is True
    assert len(lines(run_dir / "store.jsonl")) == 8


@pytest.mark.node
async def test_a_run_with_the_official_client(tmp_path: Path) -> None:
    run_dir = await run_scenario(RunParams(
        client="official", clients=2, messages=3, level="at-least-once", out=tmp_path / "run",
        **FAST))
    history = lines(run_dir / "history.jsonl")
    assert sum(e["op"] == "ack" for e in history) == 6
    assert orjson.loads((run_dir / "verdict.json").read_bytes())["valid"] is True


def faultlab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultlab", "run", *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["--clients", "0"], "Invalid value for '--clients'"),
        (["--faults", '[{"at": 1, "kind": "boom"}]'],
         "inline JSON: faults[0].kind: 'boom' is not a fault kind"),
        (["--faults", "missing.json"], "missing.json: cannot read the schedule"),
        (["--target", "node-peer", "--recovery", "durable"],
         "target 'node-peer' does not support recovery 'durable'"),
        (["--rate", "5"], "rate and duration go together"),
        (["--groups", "1", "--faults", '[{"at": 0, "kind": "partition", "target": "group:3"}]'],
         "partition targets group:3, but the run has 1 client group(s)"),
        (["--target", "node-peer", "--faults", '[{"at": 0, "kind": "store_error"}]'],
         "schedule: store_error needs failpoints, and target 'node-peer' has none"),
        (["--knob", "ping=1"], "'ping' is not a timer knob (ping_interval, ping_timeout"),
        (["--knob", "ping_timeout=soon"], "ping_timeout: 'soon' is not a number of seconds"),
        (["--knob", "busy_timeout=0"], "busy_timeout: must be > 0 seconds, not 0"),
        (["--server-env", "FAULTLAB_ALLOW_MUTATIONS"],
         "'FAULTLAB_ALLOW_MUTATIONS': expected NAME=VALUE"),
    ],
)
def test_bad_arguments_get_a_one_line_reason(args: list[str], reason: str) -> None:
    result = faultlab(*args)
    assert result.returncode == 2
    assert reason in result.stderr
    assert "Traceback" not in result.stderr


def test_a_server_that_cannot_start_is_reported_without_a_traceback(tmp_path: Path) -> None:
    target = tmp_path / "dead.toml"
    target.write_text(load_target().source.read_text().replace(
        '"{python}", "-m", "faultlab", "server"', '"{python}", "-c", "print(1/0)"'))
    result = faultlab("--target", str(target), "--out", str(tmp_path / "r"))
    assert result.returncode == 1
    assert "run failed: server exited with code 1" in result.stderr
    assert "ZeroDivisionError" in result.stderr  # the server's log tail
    harness_part, log_tail = result.stderr.split("last lines:")
    assert "Traceback" not in harness_part and "Traceback" in log_tail


REPLAYED = ("target", "level", "receive", "recovery", "transport", "client", "clients",
            "messages", "rate", "duration", "groups", "schedule", "seed", "ack_timeout",
            "retries", "offsets", "reconnect_delay", "knobs", "server_args", "server_env",
            "quiesce_deadline")


@pytest.mark.parametrize("params", [
    RunParams(),
    RunParams(target="node-peer", level="at-least-once", receive="naive", recovery="memory",
              transport="polling", client="official", clients=7, messages=0, groups=3,
              seed=-4, ack_timeout=0.25, retries=0, offsets="random", reconnect_delay=0.0,
              quiesce_deadline=1.5),
    RunParams(rate=6.0, duration=1.5, knobs={"ping_interval": 0.5, "busy_timeout": 0.3},
              server_args=["--mutation", "no_dedupe", "--flag=x y"],
              server_env={"FAULTLAB_ALLOW_MUTATIONS": "1", "EMPTY": "", "EQ": "a=b"},
              schedule=parse_schedule([{"at": 0.1, "duration": 0.3, "kind": "blackhole",
                                        "target": "group:1"}])),
])
def test_the_replay_command_parses_back_to_the_same_run(params: RunParams) -> None:
    """`RunParams.argv` and `faultlab run`'s parser are inverses: a replay needs no file."""
    argv = params.argv()
    assert argv[:2] == ["faultlab", "run"]
    replayed = params_from_options(command.make_context("run", argv[2:]).params)
    for name in REPLAYED:
        assert getattr(replayed, name) == getattr(params, name), name


def test_the_command_prints_the_run_directory(tmp_path: Path) -> None:
    """Timer knobs, server arguments and environment reach the server's command line."""
    result = faultlab("--clients", "2", "--messages", "2", "--out", str(tmp_path / "r"),
                      "--ack-timeout", "0.5", "--knob", "ping_interval=0.75",
                      "--knob", "busy_timeout=0.3", "--server-arg=--mutation",
                      "--server-arg=no_dedupe", "--server-env", "FAULTLAB_ALLOW_MUTATIONS=1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == str((tmp_path / "r").resolve())
    assert "verdict: valid=True" in result.stderr
    assert (tmp_path / "r" / "verdict.json").exists()
    server_log = (tmp_path / "r" / "logs" / "server.log").read_text()
    assert "--ping-interval 0.75 " in server_log and "--busy-timeout 300" in server_log
    assert "mutation=no_dedupe" in server_log  # the server accepted it: the env got there
    replay = orjson.loads((tmp_path / "r" / "params.json").read_bytes())["replay"]
    assert "--knob ping_interval=0.75 --knob busy_timeout=0.3" in replay
    assert "--server-arg=--mutation --server-arg=no_dedupe" in replay
    assert "--server-env FAULTLAB_ALLOW_MUTATIONS=1" in replay
