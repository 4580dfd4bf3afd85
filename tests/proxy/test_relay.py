"""The untoxic relay in each of its modes: kernel splice or userspace copy, on the
asyncio loop or uvloop. Bytes arrive intact and in order across toxic changes and
half-closes, and closed connections give back every descriptor (the splice path holds
a pipe and duplicated socket descriptors per connection)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import psutil
import pytest
from proxytools import (
    Peer,
    ProxyServer,
    connect,
    recv_exactly,
    round_trip,
    start_proxy_server,
    stop_proxy_server,
    wait_until,
)

from faultlab import loops
from faultlab.harness.proxy import splice
from faultlab.harness.proxy.proxy import Proxy
from faultlab.harness.proxy.toxics.base import REGISTRY, ToxicEntry

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
MODES = [("splice", "asyncio"), ("copy", "asyncio"), ("splice", "uvloop"), ("copy", "uvloop")]


@pytest.fixture(scope="module", params=MODES, ids=["-".join(m) for m in MODES])
def relay_server(request: pytest.FixtureRequest) -> Iterator[ProxyServer]:
    relay, loop = request.param
    server = start_proxy_server("--seed", "11", "--relay", relay, "--loop", loop)
    yield server
    assert stop_proxy_server(server) == 0


def make(server: ProxyServer, name: str, upstream: str) -> dict:
    r = server.call("POST", "/proxies", {"name": name, "upstream": upstream,
                                         "listen": "127.0.0.1:0"})
    assert r.status_code == 201, r.text
    return r.json()


def test_a_stalled_reader_loses_nothing_when_a_toxic_comes_and_goes(
    relay_server: ProxyServer, echo: Peer
) -> None:
    """The client stops reading, so the echo's bytes back up inside the proxy; then a
    toxic is added (the relay hands over what it holds) and removed: all bytes arrive,
    in order."""
    p = make(relay_server, "stall", echo.address)
    payload = random.Random(5).randbytes(6_000_000)
    sent = 0
    received = bytearray()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        host, _, port = p["listen"].rpartition(":")
        s.settimeout(30)
        s.connect((host, int(port)))

        def writer() -> None:
            nonlocal sent
            for i in range(0, len(payload), 65536):
                s.sendall(payload[i : i + 65536])
                sent = i + 65536

        def reader() -> None:
            while len(received) < len(payload):
                piece = s.recv(65536)
                if not piece:
                    return
                received.extend(piece)

        writing = threading.Thread(target=writer)
        writing.start()
        wait_until(lambda: sent >= 1_000_000, 20, "1 MB sent with nobody reading")
        toxics = "/proxies/stall/toxics"
        r = relay_server.call("POST", toxics, {"name": "lat", "type": "latency",
                                               "stream": "downstream",
                                               "attributes": {"latency": 1}})
        assert r.status_code == 200, r.text
        reading = threading.Thread(target=reader)
        reading.start()
        wait_until(lambda: len(received) >= 2_000_000, 20, "2 MB back through the toxic")
        assert relay_server.call("DELETE", f"{toxics}/lat").status_code == 204
        writing.join(30)
        reading.join(30)
    relay_server.call("DELETE", "/proxies/stall")
    assert len(received) == len(payload)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


def test_an_end_of_stream_closes_both_ways_after_every_byte(
    relay_server: ProxyServer, echo: Peer
) -> None:
    """Bytes stream both ways, then the client shuts its side: the proxy closes the
    upstream (Toxiproxy's rule), the echo ends, and the client reads the end."""
    p = make(relay_server, "eof", echo.address)
    payload = random.Random(6).randbytes(3_000_000)
    with connect(p["listen"], timeout=30) as s:
        writing = threading.Thread(target=s.sendall, args=(payload,))
        writing.start()
        got = recv_exactly(s, len(payload))
        writing.join(30)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""
    relay_server.call("DELETE", "/proxies/eof")
    assert got == payload


def test_closed_connections_give_back_every_descriptor(
    relay_server: ProxyServer, echo: Peer
) -> None:
    """Small messages cost two sockets per connection; a bulk flow may add a splice
    pipe and duplicated descriptors; closing gives every one of them back."""
    p = make(relay_server, "fds", echo.address)
    proc = psutil.Process(relay_server.proc.pid)
    before = proc.num_fds()
    socks = [connect(p["listen"], timeout=30) for _ in range(12)]
    try:
        for s in socks:
            assert round_trip(s, b"x" * 200) < 5
        assert proc.num_fds() == before + 2 * len(socks)
        bulk = random.Random(9).randbytes(2_000_000)
        for s in socks[:4]:
            writing = threading.Thread(target=s.sendall, args=(bulk,))
            writing.start()
            assert recv_exactly(s, len(bulk)) == bulk
            writing.join(30)
        if splice.AVAILABLE and "splice" in relay_server.proc.args:
            assert proc.num_fds() > before + 2 * len(socks)
    finally:
        for s in socks:
            s.close()
    wait_until(lambda: proc.num_fds() == before, 10, f"descriptors back to {before}")
    relay_server.call("DELETE", "/proxies/fds")


@contextlib.asynccontextmanager
async def _in_process_proxy(name: str, handle: Handler) -> AsyncIterator[Proxy]:
    """A proxy in this process (its connections can be looked at) in front of `handle`."""
    upstream = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = upstream.sockets[0].getsockname()[1]
    proxy = Proxy(name, "127.0.0.1:0", f"127.0.0.1:{port}", random.Random(1), splice=True)
    await proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
        upstream.close()
        await upstream.wait_closed()


async def test_bytes_held_in_the_kernel_pipe_go_first_when_a_toxic_is_added() -> None:
    """In-process, to see the splicer's state: the client does not read, so the
    downstream splicer ends up holding bytes in its pipe; adding a toxic then hands
    them to the client before anything that passes through the toxic."""
    if not splice.AVAILABLE:
        pytest.skip("os.splice is Linux only")
    payload = random.Random(8).randbytes(16_000_000)

    async def talk(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        writer.close()

    async with _in_process_proxy("held", talk) as proxy:
        loop = asyncio.get_running_loop()
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
        client.setblocking(False)
        try:
            host, _, listen_port = proxy.listen.rpartition(":")
            await loop.sock_connect(client, (host, int(listen_port)))

            def held() -> int:
                conns = [c for c in proxy.connections if "downstream" in c.links]
                splicer = conns[0].links["downstream"]._splicer if conns else None
                return splicer._pending if splicer is not None else 0

            deadline = loop.time() + 20
            while held() == 0:
                assert loop.time() < deadline, "the downstream pipe never held bytes"
                await asyncio.sleep(0.01)
            toxic = REGISTRY["latency"](latency=1)
            proxy.add_toxic(ToxicEntry("lat", "latency", "downstream", "downstream", 1.0, toxic))
            (conn,) = proxy.connections
            assert conn.links["downstream"]._splicer is None
            received = bytearray()
            while len(received) < len(payload):
                piece = await asyncio.wait_for(loop.sock_recv(client, 1 << 20), 20)
                if not piece:
                    break
                received.extend(piece)
        finally:
            client.close()
    assert len(received) == len(payload)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


async def _both_sides_send_at_once() -> None:
    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _reader.read()
        writer.close()

    async with _in_process_proxy("nodelay", hold) as proxy:
        host, _, listen_port = proxy.listen.rpartition(":")
        _reader, writer = await asyncio.open_connection(host, int(listen_port))
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not any(c.upstream.transport is not None for c in proxy.connections):
                assert loop.time() < deadline, "the proxy never opened its upstream connection"
                await asyncio.sleep(0.01)
            (conn,) = proxy.connections
            for side in (conn.client, conn.upstream):
                sock = side.transport.get_extra_info("socket")
                assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        finally:
            writer.close()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_both_sockets_of_a_relayed_connection_send_small_writes_at_once(loop: str) -> None:
    """TCP_NODELAY on the accepted side too, as Toxiproxy has: without it a relayed frame
    waits for the ACK of the one before (~40 ms behind a peer that delays its ACKs)."""
    loops.run(_both_sides_send_at_once(), loop)
