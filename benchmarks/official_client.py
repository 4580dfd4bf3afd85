"""Official-client driver figures: one node worker hosting many socket.io-client users.

Against the reference server behind the embedded proxy (a fresh cluster per phase):

1. connect: N official clients in one worker, connected through the proxy — time
   to connect them all, the worker's resident memory per 1,000 clients, and one
   broadcast that every one of them receives and the harness records;
2. CPU per received message: C official clients, one more sending at R messages/s
   for D seconds; the harness process's own CPU and the worker's CPU over the
   steady state (connects excluded), divided by the messages received (`recv` and
   `show` recorded) — with the history, then with `History(None)`;
3. the peer in the same run: the same workload on the lean Python client.

    .venv/bin/python benchmarks/official_client.py
    .venv/bin/python benchmarks/official_client.py --duration 5 --connect-clients 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from faultlab.harness.clients.base import ChatClient, ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.clients.official import OfficialWorker
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.targets import load_target


async def until(cond: Callable[[], bool], what: str, deadline: float) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"not within {deadline}s: {what}")
        await asyncio.sleep(0.02)


def received(clients: Sequence[ChatClient]) -> int:
    return sum(len(c.shown()) for c in clients)


def worker_cpu(stats: dict[str, int]) -> float:
    return (stats["cpu_user_us"] + stats["cpu_system_us"]) / 1e6


async def connect_figure(cluster: Cluster, n: int, out: Path) -> dict[str, Any]:
    async with (
        History(out / "connect.jsonl") as history,
        OfficialWorker(cluster.supervisor, history, out / "connect-worker.log") as worker,
    ):
        rss0 = (await worker.stats())["rss"]
        clients = [
            worker.client(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once",
                                       connect_timeout=30.0), start_deadline=120.0)
            for i in range(n)
        ]
        t0 = time.perf_counter()
        await asyncio.gather(*(c.start() for c in clients))
        connect_s = time.perf_counter() - t0
        rss1 = (await worker.stats())["rss"]
        t1 = time.perf_counter()
        await clients[0].send("hello everyone")
        await until(lambda: all(c.shown() for c in clients), "everyone shows it", 60)
        broadcast_s = time.perf_counter() - t1
    return {"clients": n, "connect_s": connect_s,
            "worker_rss_mb_per_1000": (rss1 - rss0) / n * 1000 / 2**20,
            "worker_rss_mb": rss1 / 2**20, "broadcast_all_received_s": broadcast_s,
            "history_events": history.count}


async def steady(sender: ChatClient, clients: Sequence[ChatClient], rate: float,
                 duration: float, tag: str) -> tuple[int, int]:
    """Send at `rate` for `duration`; returns (received, expected) over the window."""
    base = received(clients)
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = int(rate * duration)
    for i in range(count):
        wait = start + i / rate - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        await sender.send(f"{tag}:{i}")
    expected = base + count * len(clients)
    with contextlib.suppress(TimeoutError):
        await until(lambda: received(clients) >= expected, "all received", 30)
    return received(clients) - base, count * len(clients)


async def official_cpu(cluster: Cluster, record: bool, n: int, rate: float, duration: float,
                       out: Path) -> dict[str, Any]:
    path = out / f"cpu-official-{'rec' if record else 'norec'}.jsonl" if record else None
    async with (
        History(path) as history,
        OfficialWorker(cluster.supervisor, history, out / f"worker-{record}.log") as worker,
    ):
        clients = [worker.client(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once"))
                   for i in range(n)]
        sender = worker.client(ClientConfig("sender", cluster.client_url(n), "exactly-once"))
        await asyncio.gather(*(c.start() for c in [*clients, sender]))
        w0, cpu0, wall0 = worker_cpu(await worker.stats()), time.process_time(), time.perf_counter()
        got, expected = await steady(sender, clients, rate, duration, f"official:{record}")
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        wcpu = worker_cpu(await worker.stats()) - w0
    return {"client": "official", "recording": record, "received": got, "expected": expected,
            "wall_s": wall, "harness_cpu_us_per_msg": cpu / max(got, 1) * 1e6,
            "worker_cpu_us_per_msg": wcpu / max(got, 1) * 1e6,
            "total_cpu_us_per_msg": (cpu + wcpu) / max(got, 1) * 1e6}


async def lean_cpu(cluster: Cluster, n: int, rate: float, duration: float,
                   out: Path) -> dict[str, Any]:
    """The peer: the same workload on the lean Python client, recorded."""
    async with (
        History(out / "cpu-lean.jsonl") as history,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        clients = [LeanClient(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once"),
                              history, http=http, rng=random.Random(i)) for i in range(n)]
        sender = LeanClient(ClientConfig("sender", cluster.client_url(n), "exactly-once"),
                            history, http=http, rng=random.Random(n))
        try:
            await asyncio.gather(*(c.start() for c in [*clients, sender]))
            await until(lambda: all(c.connected for c in [*clients, sender]), "connected", 60)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            got, expected = await steady(sender, clients, rate, duration, "lean")
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        finally:
            for c in [*clients, sender]:
                await c.close()
    return {"client": "lean", "recording": True, "received": got, "expected": expected,
            "wall_s": wall, "harness_cpu_us_per_msg": cpu / max(got, 1) * 1e6,
            "worker_cpu_us_per_msg": 0.0, "total_cpu_us_per_msg": cpu / max(got, 1) * 1e6}


def show(label: str, result: dict[str, Any]) -> None:
    print(label, {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()})


async def main(args: argparse.Namespace) -> None:
    out = Path(tempfile.mkdtemp(prefix="faultlab-bench-official-"))
    knobs = {"ping_interval": 25.0, "ping_timeout": 20.0}
    print(f"machine: {platform.machine()} {psutil.cpu_count()} cpus, "
          f"python {platform.python_version()}, load {psutil.getloadavg()}; out {out}")

    def cluster(name: str) -> Cluster:  # a fresh store per phase: no catch-up in the window
        return Cluster(create_run_dir(out / name), load_target(), "exactly-once", knobs=knobs)

    if args.connect_clients:
        async with cluster("connect") as c:
            show("connect:", await connect_figure(c, args.connect_clients, out))
    per: dict[str, list[dict[str, Any]]] = {}
    for r in range(args.rounds):
        for phase in ("official-rec", "official-norec", "lean"):
            async with cluster(f"{phase}-{r}") as c:
                if phase == "lean":
                    result = await lean_cpu(c, args.clients, args.rate, args.duration, out)
                else:
                    result = await official_cpu(c, phase == "official-rec", args.clients,
                                                args.rate, args.duration, out)
            per.setdefault(phase, []).append(result)
            show(f"cpu {phase}:", result)

    def med(phase: str, key: str) -> float:
        return statistics.median(r[key] for r in per[phase])

    rec, norec = med("official-rec", "harness_cpu_us_per_msg"), med(
        "official-norec", "harness_cpu_us_per_msg")
    print(f"median official: harness {rec:.1f} µs + worker "
          f"{med('official-rec', 'worker_cpu_us_per_msg'):.1f} µs per received message "
          f"(total {med('official-rec', 'total_cpu_us_per_msg'):.1f} µs)")
    print(f"recording overhead (harness side): {(rec / norec - 1) * 100:+.1f} % "
          f"({norec:.1f} -> {rec:.1f} µs)")
    lean = med("lean", "total_cpu_us_per_msg")
    print(f"peer: lean client {lean:.1f} µs per received message; official total / lean "
          f"{med('official-rec', 'total_cpu_us_per_msg') / lean:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connect-clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
