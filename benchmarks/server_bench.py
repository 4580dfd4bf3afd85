"""Server cost benchmark: the reference server against the Node peer, same load.

One server at a time on this machine, the same load generator for all
(benchmarks/loadgen.mjs: the official socket.io-client under node), a fresh
SQLite file per run. The server's CPU time is read from the server process
(psutil, user + system, all its threads) at the start and the end of the
measured window, so the generator's own limits cannot hide the server's cost.

Workloads (issue 3): (a) 20 senders with one message in flight each and 2
receivers; (b) 2 senders and 50 receivers; (c) a fixed offered rate of 200
messages/s from 4 senders with 20 receivers. Servers: the reference server (WAL,
synchronous=NORMAL), the Node peer with the same SQLite settings, and the Node
peer with the tutorial's defaults (rollback journal, synchronous=FULL). Both
servers run with connection state recovery in memory, as the tutorial does.

    .venv/bin/python benchmarks/server_bench.py                 # 3 rounds, medians
    .venv/bin/python benchmarks/server_bench.py --rounds 1 --duration 3 --warmup 1

Prints a Markdown table (medians over the rounds) and the reference/peer ratios;
`--json PATH` keeps every run. Bounded: every run stops by itself, loopback only,
and every process it starts is reaped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from faultlab.harness.processes import ChildFailed, Supervisor
from faultlab.harness.targets import load_target

HERE = Path(__file__).resolve().parent
LOADGEN = HERE / "loadgen.mjs"
PRAGMAS_AS_REFERENCE = "journal_mode=WAL;synchronous=NORMAL"

WORKLOADS: dict[str, dict[str, int]] = {
    "a": {"senders": 20, "receivers": 2, "rate": 0},
    "b": {"senders": 2, "receivers": 50, "rate": 0},
    "c": {"senders": 4, "receivers": 20, "rate": 200},
}
SERVERS: dict[str, tuple[str, dict[str, str]]] = {  # row -> (shipped target | script, env)
    "reference": ("reference", {}),
    "node-peer": ("node-peer", {"SQLITE_PRAGMAS": PRAGMAS_AS_REFERENCE}),
    "node-peer-tutorial": ("node-peer", {}),
    "python-minimal": ("server_minimal_python.py", {}),
}
DEFAULT_SERVERS = "reference,node-peer,node-peer-tutorial"


def command(server: str, db: Path, recovery: str) -> tuple[list[str], dict[str, str], str]:
    """argv, environment and health path of one benchmark row."""
    name, extra_env = SERVERS[server]
    if name.endswith(".py"):
        return [sys.executable, str(HERE / name), "--port", "0", "--db", str(db)], {}, "/healthz"
    target = load_target(name)
    values = target.values(
        host="127.0.0.1", port=0, db=db, delivery="exactly-once", recovery=recovery
    )
    return target.argv(values), {**target.environment(values), **extra_env}, target.health


@dataclass
class Run:
    server: str
    workload: str
    round: int
    seconds: float
    acks: int
    deliveries: int
    failures: int
    server_cpu: float
    generator_cpu: float
    ack_p50_ms: float | None
    ack_p99_ms: float | None

    @property
    def acks_per_s(self) -> float:
        return self.acks / self.seconds

    @property
    def deliveries_per_s(self) -> float:
        return self.deliveries / self.seconds

    @property
    def server_cpu_pct(self) -> float:
        return 100 * self.server_cpu / self.seconds

    @property
    def generator_cpu_pct(self) -> float:
        return 100 * self.generator_cpu / self.seconds

    @property
    def cpu_us_per_ack(self) -> float:
        return 1e6 * self.server_cpu / max(1, self.acks)

    @property
    def cpu_us_per_delivery(self) -> float:
        return 1e6 * self.server_cpu / max(1, self.deliveries)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def one_run(server: str, workload: str, rnd: int, args: argparse.Namespace, tmp: Path) -> Run:
    db = tmp / f"{server}-{workload}-{rnd}.db"
    argv, env, health = command(server, db, args.recovery)
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node is not on PATH")
    config = {**WORKLOADS[workload], "warmup": args.warmup, "duration": args.duration}
    async with Supervisor() as supervisor:
        child = await supervisor.spawn(
            server, argv, tmp / f"{server}.log", env=env, ready_url=health
        )
        assert child.pid is not None and child.url is not None
        gen = await asyncio.create_subprocess_exec(
            node,
            str(LOADGEN),
            json.dumps({"url": child.url, **config}),
            stdout=asyncio.subprocess.PIPE,
            cwd=HERE.parent,
        )
        try:
            cpu_start = cpu_end = gen_start = gen_end = 0.0
            result: dict[str, Any] | None = None
            deadline = args.warmup + args.duration + 60  # the generator's drain is 10 s at most
            async with asyncio.timeout(deadline):
                assert gen.stdout is not None
                async for raw in gen.stdout:
                    event = json.loads(raw)
                    if event["ev"] == "measure_start":
                        cpu_start = cpu_seconds(child.pid)
                        gen_start = cpu_seconds(gen.pid)
                    elif event["ev"] == "measure_end":
                        cpu_end = cpu_seconds(child.pid)
                        gen_end = cpu_seconds(gen.pid)
                    elif event["ev"] == "result":
                        result = event
                    elif event["ev"] == "error":
                        raise RuntimeError(f"load generator: {event['detail']}")
                await gen.wait()
        finally:
            if gen.returncode is None:
                gen.kill()
                await gen.wait()
        await child.terminate()
    if result is None:
        raise RuntimeError(f"{server}/{workload}: the load generator gave no result")
    return Run(
        server,
        workload,
        rnd,
        result["seconds"],
        result["acks"],
        result["deliveries"],
        result["failures"],
        cpu_end - cpu_start,
        gen_end - gen_start,
        result["ack_ms"]["p50"],
        result["ack_ms"]["p99"],
    )


def median(runs: list[Run], attr: str) -> float | None:
    values = [getattr(r, attr) for r in runs if getattr(r, attr) is not None]
    return statistics.median(values) if values else None


def fmt(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def table(runs: list[Run], servers: list[str], workloads: list[str]) -> str:
    lines = [
        "| workload | server | acked/s | deliveries/s | CPU µs/ack | CPU µs/delivery "
        "| ack p50 ms | ack p99 ms | server CPU % | generator CPU % | failures |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for w in workloads:
        for s in servers:
            rs = [r for r in runs if r.server == s and r.workload == w]
            if not rs:
                continue
            lat = w == "c"
            lines.append(
                f"| ({w}) | {s} | {fmt(median(rs, 'acks_per_s'))} "
                f"| {fmt(median(rs, 'deliveries_per_s'))} "
                f"| {fmt(median(rs, 'cpu_us_per_ack'), 1)} "
                f"| {fmt(median(rs, 'cpu_us_per_delivery'), 2)} "
                f"| {fmt(median(rs, 'ack_p50_ms'), 1) if lat else '–'} "
                f"| {fmt(median(rs, 'ack_p99_ms'), 1) if lat else '–'} "
                f"| {fmt(median(rs, 'server_cpu_pct'))} "
                f"| {fmt(median(rs, 'generator_cpu_pct'))} "
                f"| {sum(r.failures for r in rs)} |"
            )
    return "\n".join(lines)


def ratios(runs: list[Run], workloads: list[str], peer: str = "node-peer") -> str:
    lines = [
        "| workload | reference / " + peer + " CPU per ack | per delivery |",
        "| --- | ---: | ---: |",
    ]
    for w in workloads:
        ref = [r for r in runs if r.server == "reference" and r.workload == w]
        other = [r for r in runs if r.server == peer and r.workload == w]
        if not ref or not other:
            continue
        a = (median(ref, "cpu_us_per_ack") or 0) / (median(other, "cpu_us_per_ack") or 1)
        d = (median(ref, "cpu_us_per_delivery") or 0) / (median(other, "cpu_us_per_delivery") or 1)
        lines.append(f"| ({w}) | {a:.2f} | {d:.2f} |")
    return "\n".join(lines)


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )


async def main(args: argparse.Namespace) -> int:
    servers = args.servers.split(",")
    workloads = args.workloads.split(",")
    for s in servers:
        if s not in SERVERS:
            raise SystemExit(f"unknown server {s!r} ({', '.join(SERVERS)})")
    for w in workloads:
        if w not in WORKLOADS:
            raise SystemExit(f"unknown workload {w!r} ({', '.join(WORKLOADS)})")
    runs: list[Run] = []
    errors: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="faultlab-bench-") as tmp:
        for rnd in range(args.rounds):
            for w in workloads:
                for s in servers:  # interleaved, so drift in the machine's load hits all alike
                    try:
                        run = await one_run(s, w, rnd, args, Path(tmp))
                    except (TimeoutError, RuntimeError, ChildFailed) as exc:
                        errors.append(f"round {rnd + 1} ({w}) {s}: {exc!r}")
                        print(errors[-1], file=sys.stderr)
                        continue
                    runs.append(run)
                    print(
                        f"round {rnd + 1} ({w}) {s}: {run.acks_per_s:,.0f} acked/s, "
                        f"{run.cpu_us_per_ack:.1f} µs CPU/ack, "
                        f"{run.cpu_us_per_delivery:.2f} µs CPU/delivery",
                        file=sys.stderr,
                    )
    print(
        f"\n{args.rounds} round(s), {args.warmup:g} s warm-up + {args.duration:g} s measured "
        f"per run, {time.monotonic() - started:.0f} s in all; {machine()}\n"
    )
    print(table(runs, servers, workloads))
    print()
    print(ratios(runs, workloads))
    if errors:
        print(f"\n{len(errors)} run(s) did not finish and are left out:")
        print("\n".join(f"- {e}" for e in errors))
    if args.json:
        Path(args.json).write_text(json.dumps([asdict(r) for r in runs], indent=1))
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured")
    parser.add_argument("--workloads", default="a,b,c")
    parser.add_argument(
        "--servers",
        default=DEFAULT_SERVERS,
        help=f"comma-separated rows out of {', '.join(SERVERS)}",
    )
    parser.add_argument(
        "--recovery",
        choices=("memory", "off"),
        default="memory",
        help="connection state recovery on every server (default: the tutorial's)",
    )
    parser.add_argument("--json", help="write every run to this file")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
