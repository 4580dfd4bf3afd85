"""Helpers for the proxy tests: a real `faultlab proxy` process and real TCP peers."""

from __future__ import annotations

import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from faultlab.harness.processes import READY_LINE


@dataclass
class ProxyServer:
    """A running `faultlab proxy` child and a tiny HTTP helper for its API."""

    url: str
    proc: subprocess.Popen[str]
    session: requests.Session = field(default_factory=requests.Session)

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        return self.session.request(method, self.url + path, json=body, timeout=10, **kw)


def start_proxy_server(*extra: str) -> ProxyServer:
    """Start the server on a free port; wait (with a deadline) for its ready line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "faultlab", "proxy", "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    found: list[str] = []
    reader = threading.Thread(
        target=lambda: found.append(proc.stdout.readline() if proc.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(15)
    line = found[0] if found else ""
    match = READY_LINE.search(line)
    if not match:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        raise RuntimeError(f"proxy did not start: {line!r} {err}")
    return ProxyServer(match.group("url"), proc)


def stop_proxy_server(server: ProxyServer, timeout: float = 10) -> int:
    """SIGTERM, and the exit code (the process is killed if it outstays `timeout`)."""
    server.session.close()
    server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(timeout=timeout)
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        server.proc.communicate()


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while data := sock.recv(65536):
                sock.sendall(data)
        except OSError:
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class Peer:
    """A TCP server on loopback; `address` is 'host:port'."""

    server: _Server

    @property
    def address(self) -> str:
        host, port = self.server.server_address[:2]
        return f"{host}:{port}"


def serve(handler: type[socketserver.BaseRequestHandler]) -> Iterator[Peer]:
    """A threaded TCP server for the duration of the generator."""
    server = _Server(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield Peer(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def connect(listen: str, timeout: float = 5.0) -> socket.socket:
    host, _, port = listen.rpartition(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError(f"closed after {len(out)} of {n} bytes")
        out += chunk
    return bytes(out)


def round_trip(sock: socket.socket, payload: bytes = b"x" * 64) -> float:
    """Seconds for one echo of `payload`."""
    start = time.perf_counter()
    sock.sendall(payload)
    assert recv_exactly(sock, len(payload)) == payload
    return time.perf_counter() - start


def wait_until(predicate: Callable[[], bool], deadline: float = 5.0, what: str = "") -> None:
    """Poll a condition until it holds, failing after `deadline` seconds."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.01)
    raise AssertionError(f"timed out after {deadline}s waiting for {what or predicate}")
