"""Direct connection vs through the embedded proxy (no toxics), in one run.

    .venv/bin/python benchmarks/proxy_relay.py [--pings 10000] [--bulk-mb 1000]
        [--conns 1000] [--conn-pings 100] [--variants splice,copy] [--rounds 1]

Measures: round-trip p50/p99 of sequential 64-byte ping-pongs on one connection;
bulk throughput of one connection (client -> sink); N concurrent connections each
doing M ping-pongs at once (errors, p50/p99). For each proxy variant (a `faultlab
proxy` process per variant, started with that variant's options) it also measures the
proxy's CPU time per phase — per ping-pong and per GB — which depends far less on
what else the machine is doing than wall-clock figures; the 1-minute load average is
printed beside every phase. Phases interleave the paths (direct, then each variant)
so that all of them see the same machine. The echo/sink server, the proxies and the
client are separate processes. Everything listens on 127.0.0.1 and is reaped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
PING = b"p" * 64
BULK_BLOCK = 1 << 20
VARIANTS: dict[str, list[str]] = {  # name -> extra `faultlab proxy` options
    "default": [],
    "splice": ["--relay", "splice", "--loop", "asyncio"],
    "copy": ["--relay", "copy", "--loop", "asyncio"],
    "uvloop-splice": ["--relay", "splice", "--loop", "uvloop"],
    "uvloop-copy": ["--relay", "copy", "--loop", "uvloop"],
}


# --- the echo + sink server (runs as a child: `--serve`) ---------------------------------
class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


class Sink(asyncio.BufferedProtocol):
    """Counts bytes (into one reused buffer); after the announced size, answers '!'."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport, self.want, self.got = transport, -1, 0
        self.buffer = memoryview(bytearray(1 << 20))

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        if self.want < 0:
            self.want = int.from_bytes(self.buffer[:8], "big")
            nbytes -= 8
        self.got += nbytes
        if self.got >= self.want:
            self.transport.write(b"!")  # type: ignore[attr-defined]


async def serve() -> None:
    loop = asyncio.get_running_loop()
    echo = await loop.create_server(Echo, "127.0.0.1", 0, backlog=4096)
    sink = await loop.create_server(Sink, "127.0.0.1", 0, backlog=4096)
    ports = [s.sockets[0].getsockname()[1] for s in (echo, sink)]
    print(json.dumps(ports), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()


# --- the client side -----------------------------------------------------------------
def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def ping_pong(port: int, count: int) -> dict[str, float]:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for _ in range(count):
            start = time.perf_counter()
            s.sendall(PING)
            got = 0
            while got < len(PING):
                got += len(s.recv(4096))
            rtts.append(time.perf_counter() - start)
    return {"rtt_p50_us": statistics.median(rtts) * 1e6, "rtt_p99_us": pct(rtts, 0.99) * 1e6}


def bulk(port: int, total: int) -> dict[str, float]:
    """MB/s (10^6 bytes) for `total` bytes over one connection, the sink's '!' included
    (the sink answers once it has read the last byte)."""
    block = memoryview(os.urandom(BULK_BLOCK))
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        start = time.perf_counter()
        s.sendall(total.to_bytes(8, "big"))
        sent = 0
        while sent < total:
            n = min(BULK_BLOCK, total - sent)
            s.sendall(block[:n])
            sent += n
        if s.recv(1) != b"!":
            raise RuntimeError("the sink closed before reading everything")
        return {"bulk_MBps": total / (time.perf_counter() - start) / 1e6}


async def concurrent(port: int, conns: int, pings: int) -> dict[str, float]:
    """Open `conns` connections, then have all of them ping-pong at once."""
    errors, rtts = 0, []

    async def run(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        nonlocal errors
        reader, writer = stream
        try:
            for _ in range(pings):
                start = time.perf_counter()
                writer.write(PING)
                await reader.readexactly(len(PING))
                rtts.append(time.perf_counter() - start)
        except (OSError, asyncio.IncompleteReadError):
            errors += 1
        finally:
            writer.close()

    opened = await asyncio.gather(
        *(asyncio.open_connection("127.0.0.1", port) for _ in range(conns)),
        return_exceptions=True,
    )
    streams = [s for s in opened if not isinstance(s, BaseException)]
    errors += conns - len(streams)
    start = time.perf_counter()
    await asyncio.gather(*(run(s) for s in streams))
    return {
        "conc_errors": errors, "conc_rtts": len(rtts),
        "conc_p50_ms": statistics.median(rtts) * 1e3 if rtts else float("nan"),
        "conc_p99_ms": pct(rtts, 0.99) * 1e3 if rtts else float("nan"),
        "conc_wall_s": time.perf_counter() - start,
    }


# --- processes -------------------------------------------------------------------------
def spawn(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line:
        proc.wait(10)
        raise RuntimeError(f"{' '.join(argv)} exited with {proc.returncode} before it was ready")
    return proc, line


def stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def add_proxies(api: str, upstreams: dict[str, int]) -> dict[str, int]:
    """One proxy per upstream on the server at `api`; returns their listening ports."""
    ports = {}
    for name, port in upstreams.items():
        r = requests.post(f"{api}/proxies", json={
            "name": name, "upstream": f"127.0.0.1:{port}", "listen": "127.0.0.1:0"},
            timeout=10)
        r.raise_for_status()
        ports[name] = int(r.json()["listen"].rsplit(":", 1)[1])
    return ports


def cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    times = proc.cpu_times()
    return times.user + times.system


# --- the run -------------------------------------------------------------------------
def measure(
    args: argparse.Namespace, ports: dict[str, dict[str, int]],
    cpus: dict[str, psutil.Process | None],
) -> dict[str, dict[str, list[float]]]:
    """Every phase on every path, `rounds` times; each figure a list (one per round)."""
    phases: list[tuple[str, str, Callable[[int], dict[str, float]], float]] = [
        ("rtt", "echo", lambda p: ping_pong(p, args.pings), args.pings),
        ("bulk", "sink", lambda p: bulk(p, args.bulk_mb * 1_000_000), args.bulk_mb / 1000),
        ("conc", "echo",
         lambda p: asyncio.run(concurrent(p, args.conns, args.conn_pings)),
         args.conns * args.conn_pings),
    ]
    cpu_keys = {"rtt": ("cpu_us_per_pingpong", 1e6), "bulk": ("cpu_s_per_GB", 1.0),
                "conc": ("cpu_us_per_conc_pingpong", 1e6)}
    out: dict[str, dict[str, list[float]]] = {path: {} for path in ports}
    for _ in range(args.rounds):
        for phase, upstream, run, units in phases:
            if phase not in args.phases:
                continue
            for path, path_ports in ports.items():
                load = os.getloadavg()[0]
                before = cpu_seconds(cpus[path])
                figures = run(path_ports[upstream])
                if cpus[path] is not None:
                    key, scale = cpu_keys[phase]
                    figures[key] = (cpu_seconds(cpus[path]) - before) / units * scale
                figures[f"load_{phase}"] = load
                for key, value in figures.items():
                    out[path].setdefault(key, []).append(value)
    return out


ROWS = [
    ("RTT p50 (us)", "rtt_p50_us", 0), ("RTT p99 (us)", "rtt_p99_us", 0),
    ("proxy CPU per ping-pong (us)", "cpu_us_per_pingpong", 1), ("  load (1 min)", "load_rtt", 1),
    ("bulk (MB/s)", "bulk_MBps", 0), ("proxy CPU per GB (s)", "cpu_s_per_GB", 2),
    ("  load (1 min)", "load_bulk", 1),
    ("concurrent errors", "conc_errors", 0), ("concurrent RTTs", "conc_rtts", 0),
    ("concurrent p50 (ms)", "conc_p50_ms", 1), ("concurrent p99 (ms)", "conc_p99_ms", 1),
    ("concurrent wall (s)", "conc_wall_s", 2),
    ("proxy CPU per ping-pong (us)", "cpu_us_per_conc_pingpong", 1),
    ("  load (1 min)", "load_conc", 1),
]


def report(results: dict[str, dict[str, list[float]]]) -> None:
    paths = list(results)
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, {platform.platform()}, "
          f"Python {platform.python_version()}; figures are medians of the rounds")
    print(f"{'':30}" + "".join(f"{p:>15}" for p in paths))
    for label, key, digits in ROWS:
        cells = []
        for path in paths:
            values = results[path].get(key)
            cells.append(f"{statistics.median(values):15.{digits}f}" if values else f"{'-':>15}")
        print(f"{label:30}" + "".join(cells))
    direct = results["direct"]
    for path in paths[1:]:
        x, parts = results[path], []
        if "rtt_p50_us" in x:
            for p in ("p50", "p99"):
                added = statistics.median(x[f"rtt_{p}_us"]) - statistics.median(
                    direct[f"rtt_{p}_us"])
                parts.append(f"added RTT {p} {added:.0f} us")
        if "bulk_MBps" in x:
            ratio = statistics.median(x["bulk_MBps"]) / statistics.median(direct["bulk_MBps"])
            parts.append(f"bulk {ratio:.2f} x direct")
        print(f"{path}: {', '.join(parts)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pings", type=int, default=10_000)
    ap.add_argument("--bulk-mb", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--conn-pings", type=int, default=100)
    ap.add_argument("--variants", default="splice,copy",
                    help=f"comma-separated proxy variants, of {', '.join(VARIANTS)}")
    ap.add_argument("--rounds", type=int, default=1, help="repeat every phase; medians")
    ap.add_argument("--phases", default="rtt,bulk,conc", type=lambda v: v.split(","),
                    help="which of rtt, bulk, conc to run")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    procs: list[subprocess.Popen[str]] = []
    try:
        server, line = spawn([sys.executable, __file__, "--serve"])
        procs.append(server)
        echo_port, sink_port = json.loads(line)
        ports = {"direct": {"echo": echo_port, "sink": sink_port}}
        cpus: dict[str, psutil.Process | None] = {"direct": None}
        for variant in variants:
            proxy, ready = spawn([sys.executable, "-m", "faultlab", "proxy", "--port", "0",
                                  "--log-level", "warning", *VARIANTS[variant]])
            procs.append(proxy)
            ports[variant] = add_proxies(ready.rsplit(" ", 1)[1], ports["direct"])
            cpus[variant] = psutil.Process(proxy.pid)
        results = measure(args, ports, cpus)
    finally:
        stop(procs)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
