"""Harness client figures: the lean client against python-socketio's AsyncClient.

Three figures, in one run, against the reference server behind the embedded proxy:

1. connect: N lean clients connected through the proxy in this one process — time
   to connect them all, resident memory per 1,000 clients, and one broadcast that
   every one of them receives and records;
2. CPU per received message: C clients, one of them sending at R messages/s for D
   seconds; the harness process's own CPU time (server and proxy are other
   processes) over the steady state (connects excluded), divided by the `recv`
   events recorded (`show` recorded too) — lean client, then the stock client;
   `sleeps_per_send` counts the times the process blocked per sent message (each a
   wake-up: `benchmarks/wake_cost.py` measures what one costs on this machine);
3. recording overhead: the lean phase again, with the history switched on and off in
   turns of `--window` seconds (on, off, off, on, ...; off is what `History(None)`
   does) inside the one run. Each window's CPU per received message is measured;
   the overhead is the pooled CPU per message of the on windows against the off
   windows. Separate phases with and without a history differed by −11 % to +31 %
   from run to run on this machine, because the host's speed drifts by more than
   the recording costs; windows a second apart share that drift.

Every phase runs in a fresh event loop of the harness's default kind (uvloop, as
`faultlab run` and the scenarios use; `faultlab.loops`); `--loops uvloop asyncio`
compares both loops in one run. The CPU phases run for `--rounds` rounds (3 by default), alternating
their order from round to round, and the summary gives medians: one round is too
noisy for a 10 % figure on a shared machine.

    .venv/bin/python benchmarks/harness_clients.py            # the issue's figures
    .venv/bin/python benchmarks/harness_clients.py --rounds 2 --loops uvloop asyncio
    .venv/bin/python benchmarks/harness_clients.py --duration 5 --connect-clients 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import platform
import random
import resource
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import socketio

from faultlab import loops
from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.clients.receive import policy
from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.targets import load_target

# (client, recording): True records everything; "alternate" switches it in turns.
PHASES: tuple[tuple[str, bool | str], ...] = (
    ("lean", True), ("lean", "alternate"), ("stock", True),
)


async def paced(rate: float, count: int) -> AsyncIterator[int]:
    """0 .. count - 1, the i-th at `i / rate` seconds from now (all at once if rate is 0)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i in range(count):
        if rate and (wait := start + i / rate - loop.time()) > 0:
            await asyncio.sleep(wait)
        yield i


async def until(cond: Callable[[], bool], what: str, deadline: float) -> None:
    end = time.monotonic() + deadline
    while not cond():
        if time.monotonic() > end:
            raise TimeoutError(f"not within {deadline}s: {what}")
        await asyncio.sleep(0.02)


class StockClient:
    """python-socketio's AsyncClient receiving and recording exactly as the lean one does."""

    def __init__(self, cid: str, url: str, history: History) -> None:
        self.id, self.url, self.history = cid, url, history
        self.sio = socketio.AsyncClient(reconnection=False)
        self.policy = policy("strict")
        self.received = 0
        self.sio.on("chat message", self._on_message)

    async def _on_message(self, *args: Any) -> None:
        content = args[0] if args else None
        offset = args[1] if len(args) > 1 else None
        self.received += 1
        self.history.record_receive(self.id, content, offset, None, self.policy.accept(offset))

    async def start(self) -> None:
        await self.sio.connect(self.url, transports=["websocket"],
                               auth=lambda: {"serverOffset": self.policy.server_offset})

    async def close(self) -> None:
        await self.sio.disconnect()


def received_by(clients: list[Any]) -> int:
    total = 0
    for c in clients:
        total += c.received if isinstance(c, StockClient) else len(c.shown())
    return total


async def connect_figure(cluster: Cluster, n: int, out: Path) -> dict[str, float]:
    proc = psutil.Process()
    async with (
        History(out / "connect.jsonl") as history,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        rss0 = proc.memory_info().rss
        clients = [
            LeanClient(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once",
                                    connect_timeout=30.0), history, http=http,
                       rng=random.Random(i))
            for i in range(n)
        ]
        t0 = time.perf_counter()
        for c in clients:
            await c.start()
        await until(lambda: all(c.connected for c in clients), f"{n} connected", 120)
        connect_s = time.perf_counter() - t0
        rss1 = proc.memory_info().rss
        msg_t0 = time.perf_counter()
        await clients[0].send("hello everyone")
        await until(lambda: all(c.shown() for c in clients), "everyone shows it", 60)
        broadcast_s = time.perf_counter() - msg_t0
        for c in clients:
            await c.close()
    return {
        "clients": n, "connect_s": connect_s, "rss_mb_per_1000": (rss1 - rss0) / n * 1000 / 2**20,
        "broadcast_all_received_s": broadcast_s, "history_events": history.count,
    }


async def alternate(history: History, clients: list[Any], window: float,
                    windows: list[tuple[bool, float, int]]) -> None:
    """Switch recording on and off in turns of `window` seconds (on, off, off, on: a
    steady drift cancels within each four), appending (on, CPU seconds, messages
    received) per window. Off is `History(None)`'s state: no write function."""
    write = history._write  # the switch History(None) sets
    cpu, got = time.process_time(), received_by(clients)
    try:
        for i in itertools.count():
            on = i % 4 in (0, 3)
            history._write = write if on else None
            await asyncio.sleep(window)
            cpu1, got1 = time.process_time(), received_by(clients)
            windows.append((on, cpu1 - cpu, got1 - got))
            cpu, got = cpu1, got1
    finally:
        history._write = write


def paired_overhead(windows: list[tuple[bool, float, int]]) -> dict[str, float]:
    """CPU per message with and without recording, pooled over whole on/off/off/on
    groups of windows, and the overhead between them."""
    whole = windows[: len(windows) // 4 * 4]
    pooled = {on: (sum(c for o, c, _ in whole if o is on), sum(g for o, _, g in whole if o is on))
              for on in (True, False)}
    rec, bare = (pooled[on][0] / max(pooled[on][1], 1) * 1e6 for on in (True, False))
    return {"windows": len(whole), "rec_us_per_msg": rec, "bare_us_per_msg": bare,
            "overhead": rec / bare - 1 if bare else float("nan")}


async def cpu_figure(cluster: Cluster, kind: str, record: bool | str, n: int, rate: float,
                     duration: float, out: Path, window: float = 1.0) -> dict[str, Any]:
    """Harness CPU per received message in steady state (connects excluded)."""
    path = out / f"cpu-{kind}-{record}.jsonl" if record else None
    async with (
        History(path) as history,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http,
    ):
        clients: list[Any]
        if kind == "lean":
            clients = [LeanClient(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once"),
                                  history, http=http, rng=random.Random(i)) for i in range(n)]
        else:
            clients = [StockClient(f"c{i}", cluster.client_url(i), history) for i in range(n)]
        sender = LeanClient(ClientConfig("sender", cluster.client_url(n), "exactly-once"),
                            history, http=http, rng=random.Random(n))
        try:
            for c in clients:
                await c.start()
            await sender.start()
            await until(lambda: sender.connected and all(
                c.connected if isinstance(c, LeanClient) else c.sio.connected
                for c in clients), "connected", 60)
            base = received_by(clients)
            use0, cpu0, wall0 = (resource.getrusage(resource.RUSAGE_SELF), time.process_time(),
                                 time.perf_counter())
            count = int(rate * duration)
            windows: list[tuple[bool, float, int]] = []
            switch = (asyncio.ensure_future(alternate(history, clients, window, windows))
                      if record == "alternate" else None)
            async for i in paced(rate, count):
                await sender.send(f"{kind}:{record}:{i}")
            if switch is not None:
                switch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await switch
            expected = base + count * n
            with contextlib.suppress(TimeoutError):
                await until(lambda: received_by(clients) >= expected, "all received", 30)
            cpu = time.process_time() - cpu0
            use1 = resource.getrusage(resource.RUSAGE_SELF)
            wall = time.perf_counter() - wall0
            got = received_by(clients) - base
        finally:
            for c in clients:
                await c.close()
            await sender.close()
    return {"client": kind, "recording": record, "received": got, "expected": count * n,
            "wall_s": wall, "cpu_s": cpu, "cpu_us_per_msg": cpu / max(got, 1) * 1e6,
            "harness_cpu_share": cpu / wall,
            "sys_share": (use1.ru_stime - use0.ru_stime) / max(cpu, 1e-9),
            "minor_faults_per_msg": (use1.ru_minflt - use0.ru_minflt) / max(got, 1),
            "sleeps_per_send": (use1.ru_nvcsw - use0.ru_nvcsw) / max(count, 1),
            **(paired_overhead(windows) if record == "alternate" else {})}


def runner(loop: str) -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """Each phase runs in a fresh loop of its own, of kind `loop`."""
    return functools.partial(loops.run, name=loop)


async def connect_phase(args: argparse.Namespace, out: Path) -> None:
    async with phase_cluster(out, "connect", args.targets[0]) as c:
        print("connect:", await connect_figure(c, args.connect_clients, out))


async def cpu_phase(args: argparse.Namespace, out: Path, kind: str, record: bool | str,
                    name: str, target: str) -> dict[str, Any]:
    async with phase_cluster(out, name, target) as c:
        return await cpu_figure(c, kind, record, args.clients, args.rate, args.duration, out,
                                args.window)


def phase_cluster(out: Path, name: str, target: str = "reference") -> Cluster:
    """A fresh store per phase: no catch-up inside the measured window."""
    knobs = {"ping_interval": 25.0, "ping_timeout": 20.0}
    return Cluster(create_run_dir(out / name), load_target(target), "exactly-once", knobs=knobs)


def main(args: argparse.Namespace) -> None:
    out = Path(tempfile.mkdtemp(prefix="faultlab-bench-"))
    print(f"machine: {platform.machine()} {psutil.cpu_count()} cpus, "
          f"python {platform.python_version()}, load {psutil.getloadavg()}")
    if args.connect_clients:
        runner(args.loops[0])(connect_phase(args, out))
    variants = [(loop, target) for target in args.targets for loop in args.loops]
    phases = [(kind, record, v) for v in variants for kind, record in PHASES if kind in args.only]
    per: dict[tuple[str, bool | str, tuple[str, str]], list[float]] = {}
    overheads: dict[tuple[str, str], list[dict[str, float]]] = {}
    for r_ in range(args.rounds):
        order = phases if r_ % 2 == 0 else phases[::-1]  # no order bias
        for kind, record, (loop, target) in order:
            name = f"{kind}-{record}-{loop}-{Path(target).stem}-{r_}"
            r = runner(loop)(cpu_phase(args, out, kind, record, name, target))
            per.setdefault((kind, record, (loop, target)), []).append(r["cpu_us_per_msg"])
            if record == "alternate":
                overheads.setdefault((loop, target), []).append(r)
            print("cpu:", {"loop": loop, "target": target,
                           "load1": round(psutil.getloadavg()[0], 1),
                           **{k: round(v, 3) if isinstance(v, float) else v
                              for k, v in r.items()}})
    nan = [float("nan")]
    for v in variants:
        lean, _, stock = (statistics.median(per.get((k, rec, v), nan)) for k, rec in PHASES)
        paired = overheads.get(v, [])
        overhead = statistics.median([p["overhead"] for p in paired] or nan)
        rec, bare = (statistics.median([p[key] for p in paired] or nan)
                     for key in ("rec_us_per_msg", "bare_us_per_msg"))
        rounds = ", ".join(f"{p['overhead'] * 100:+.1f}" for p in paired)
        print(f"[{' / '.join(v)}] median lean CPU per received message: {lean:.1f} µs "
              f"(stock {stock:.1f} µs, stock/lean {stock / lean:.1f}x); recording overhead "
              f"{overhead * 100:+.1f} % (alternating windows: {bare:.1f} -> {rec:.1f} µs; "
              f"per round {rounds} %)")
    print(f"load average at the end: {psutil.getloadavg()}; peak RSS of this process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--connect-clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of the CPU phases (order alternating); medians reported")
    parser.add_argument("--window", type=float, default=1.0,
                        help="seconds per recording on/off window of the overhead phase")
    parser.add_argument("--only", nargs="+", choices=("lean", "stock"), default=["lean", "stock"],
                        help="which clients' CPU phases to run")
    parser.add_argument("--loops", nargs="+", choices=loops.LOOPS,
                        default=[loops.DEFAULT_LOOP],
                        help="the harness process's event loop(s), compared in one run")
    parser.add_argument("--targets", nargs="+", default=["reference"],
                        help="target files or shipped names (reference, node-peer): the "
                             "server the clients receive from, compared in one run")
    main(parser.parse_args())
