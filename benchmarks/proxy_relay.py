"""Direct connection vs through the embedded proxy (no toxics), in one run.

    .venv/bin/python benchmarks/proxy_relay.py [--pings 10000] [--bulk-mb 1000]
        [--conns 1000] [--conn-pings 100]

Measures: round-trip p50/p99 of sequential 64-byte ping-pongs on one connection;
bulk throughput of one connection (client -> sink); N concurrent connections each
doing M ping-pongs at once (errors, p50/p99, the proxy's CPU time). The echo/sink
server and the proxy are separate processes, so the client, the proxy and the server
do not share a GIL. Everything listens on 127.0.0.1 and is reaped at the end.
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
from pathlib import Path

import psutil
import requests

ROOT = Path(__file__).resolve().parent.parent
PING = b"p" * 64
BULK_BLOCK = 1 << 20


# --- the echo + sink server (runs as a child: `--serve`) ---------------------------------
class Echo(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)  # type: ignore[attr-defined]


class Sink(asyncio.Protocol):
    """Counts bytes; after the 8-byte size header's worth, answers one byte."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport, self.want, self.got = transport, -1, 0

    def data_received(self, data: bytes) -> None:
        if self.want < 0:
            self.want = int.from_bytes(data[:8], "big")
            data = data[8:]
        self.got += len(data)
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


def ping_pong(port: int, count: int) -> list[float]:
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
    return rtts


def bulk(port: int, total: int) -> float:
    """MB/s (10^6 bytes) for `total` bytes over one connection."""
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
        assert s.recv(1) == b"!"
        return total / (time.perf_counter() - start) / 1e6


async def concurrent(port: int, conns: int, pings: int) -> tuple[int, list[float]]:
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
    await asyncio.gather(*(run(s) for s in streams))
    return errors, rtts


def spawn(argv: list[str]) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pings", type=int, default=10_000)
    ap.add_argument("--bulk-mb", type=int, default=1000)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--conn-pings", type=int, default=100)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    server, line = spawn([sys.executable, __file__, "--serve"])
    proxy, ready = spawn([sys.executable, "-m", "faultlab", "proxy", "--port", "0",
                          "--log-level", "warning"])
    try:
        echo_port, sink_port = json.loads(line)
        api = ready.rsplit(" ", 1)[1]
        ports = {"direct": {"echo": echo_port, "sink": sink_port}, "proxy": {}}
        for name, port in (("echo", echo_port), ("sink", sink_port)):
            r = requests.post(f"{api}/proxies", json={
                "name": name, "upstream": f"127.0.0.1:{port}", "listen": "127.0.0.1:0"},
                timeout=10)
            ports["proxy"][name] = int(r.json()["listen"].rsplit(":", 1)[1])
        cpu = psutil.Process(proxy.pid)
        results: dict[str, dict[str, float]] = {}
        for path in ("direct", "proxy"):
            p = ports[path]
            rtts = ping_pong(p["echo"], args.pings)
            mbps = bulk(p["sink"], args.bulk_mb * 1_000_000)
            before = sum(cpu.cpu_times()[:2])
            start = time.perf_counter()
            errors, crtts = asyncio.run(concurrent(p["echo"], args.conns, args.conn_pings))
            wall = time.perf_counter() - start
            results[path] = {
                "rtt_p50_us": statistics.median(rtts) * 1e6, "rtt_p99_us": pct(rtts, 0.99) * 1e6,
                "bulk_MBps": mbps,
                "conc_errors": errors, "conc_rtts": len(crtts),
                "conc_p50_ms": statistics.median(crtts) * 1e3 if crtts else float("nan"),
                "conc_p99_ms": pct(crtts, 0.99) * 1e3 if crtts else float("nan"),
                "conc_wall_s": wall,
                "proxy_cpu_s": sum(cpu.cpu_times()[:2]) - before if path == "proxy" else 0.0,
            }
    finally:
        for proc in (proxy, server):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    d, x = results["direct"], results["proxy"]
    print(f"machine: {platform.machine()} {os.cpu_count()} cpu, Python {platform.python_version()}")
    print(f"{'':24}{'direct':>12}{'proxy':>12}{'ratio':>9}")
    rows = [("RTT p50 (us)", "rtt_p50_us"), ("RTT p99 (us)", "rtt_p99_us"),
            ("bulk (MB/s)", "bulk_MBps"), ("concurrent errors", "conc_errors"),
            ("concurrent RTTs", "conc_rtts"), ("concurrent p50 (ms)", "conc_p50_ms"),
            ("concurrent p99 (ms)", "conc_p99_ms"), ("concurrent wall (s)", "conc_wall_s"),
            ("proxy CPU (s)", "proxy_cpu_s")]
    for label, key in rows:
        ratio = x[key] / d[key] if d[key] else float("nan")
        print(f"{label:24}{d[key]:12.1f}{x[key]:12.1f}{ratio:9.2f}")
    print(f"added RTT p99: {x['rtt_p99_us'] - d['rtt_p99_us']:.0f} us")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
