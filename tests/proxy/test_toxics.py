"""Each toxic's effect, measured through the proxy on a real TCP echo server."""

from __future__ import annotations

import contextlib
import hashlib
import random
import socket
import socketserver
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from proxytools import Peer, ProxyServer, connect, recv_exactly, round_trip, serve

TOL = 0.06  # seconds of scheduling slack allowed on top of a configured delay


def add_toxic(server: ProxyServer, proxy: str, **body: object) -> dict:
    r = server.call("POST", f"/proxies/{proxy}/toxics", body)
    assert r.status_code == 200, r.text
    return r.json()


def test_no_toxic_round_trip_is_fast(make_proxy, echo: Peer) -> None:
    p = make_proxy(echo.address)
    with connect(p["listen"]) as s:
        rtts = [round_trip(s) for _ in range(20)]
    assert statistics.median(rtts) < 0.01


def test_latency_delays_each_direction_by_its_toxic(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="latency", attributes={"latency": 100})
    with connect(p["listen"]) as s:
        rtt = round_trip(s)
        assert 0.1 <= rtt < 0.1 + TOL
        add_toxic(proxy_server, p["name"], type="latency", stream="upstream",
                  attributes={"latency": 50})
        rtt = round_trip(s)
        assert 0.15 <= rtt < 0.15 + TOL


def test_latency_jitter_stays_within_bounds(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="latency", attributes={"latency": 60, "jitter": 40})
    with connect(p["listen"]) as s:
        rtts = [round_trip(s) for _ in range(12)]
    assert min(rtts) >= 0.02 - 0.002
    assert max(rtts) < 0.1 + TOL
    assert max(rtts) - min(rtts) > 0.01  # it does vary


def test_bandwidth_limits_the_rate(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="bandwidth", attributes={"rate": 200})  # 200 KB/s
    payload = random.Random(1).randbytes(100_000)
    with connect(p["listen"], timeout=10) as s:
        start = time.perf_counter()
        s.sendall(payload)
        assert recv_exactly(s, len(payload)) == payload
        elapsed = time.perf_counter() - start
    assert 0.4 <= elapsed < 0.75, elapsed  # 100 KB at 200 KB/s = 0.5 s


class _Burst(socketserver.BaseRequestHandler):
    """Sends 2,000 bytes at once, then closes."""

    def handle(self) -> None:
        self.request.sendall(bytes(range(250)) * 8)


@pytest.fixture
def burst() -> Iterator[Peer]:
    yield from serve(_Burst)


def test_slicer_delivers_small_pieces(proxy_server, make_proxy, burst) -> None:
    p = make_proxy(burst.address)
    add_toxic(proxy_server, p["name"], type="slicer",
              attributes={"average_size": 20, "size_variation": 5, "delay": 3000})
    sizes, data = [], b""
    with connect(p["listen"]) as s:
        while piece := s.recv(65536):
            sizes.append(len(piece))
            data += piece
    assert data == bytes(range(250)) * 8
    assert len(sizes) >= 40, sizes  # ~100 slices, 3 ms apart; reads may merge a few
    assert statistics.median(sizes) <= 30, sizes


def test_limit_data_closes_after_n_bytes(proxy_server, make_proxy, burst) -> None:
    p = make_proxy(burst.address)
    add_toxic(proxy_server, p["name"], type="limit_data", attributes={"bytes": 300})
    with connect(p["listen"]) as s:
        data = b""
        while piece := s.recv(65536):
            data += piece
    assert data == (bytes(range(250)) * 8)[:300]


def test_timeout_holds_then_closes(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="timeout", attributes={"timeout": 300})
    with connect(p["listen"]) as s:
        start = time.perf_counter()
        s.sendall(b"hello")
        assert s.recv(100) == b""  # nothing came back; the link was closed
        elapsed = time.perf_counter() - start
    assert 0.3 - 0.01 <= elapsed < 0.3 + TOL + 0.05, elapsed


def test_timeout_zero_holds_until_removed_then_closes(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="timeout", attributes={"timeout": 0})
    with connect(p["listen"]) as s:
        s.sendall(b"hello")
        s.settimeout(0.4)
        with pytest.raises(TimeoutError):
            s.recv(100)  # held: neither data nor a close
        s.settimeout(5)
        r = proxy_server.call("DELETE", f"/proxies/{p['name']}/toxics/timeout_downstream")
        assert r.status_code == 204
        assert s.recv(100) == b""  # Toxiproxy closes a link whose data was dropped


def test_reset_peer_sends_rst(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="reset_peer", attributes={"timeout": 100})
    with connect(p["listen"]) as s:
        start = time.perf_counter()
        s.sendall(b"hello")  # the echo arms the downstream toxic
        with pytest.raises(ConnectionResetError):
            while s.recv(100):
                pass
        assert time.perf_counter() - start >= 0.1 - 0.01


class _CloseAtOnce(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.sendall(b"bye")


@pytest.fixture
def closer() -> Iterator[Peer]:
    yield from serve(_CloseAtOnce)


def _time_to_eof(listen: str) -> float:
    with connect(listen) as s:
        start = time.perf_counter()
        data = b""
        while piece := s.recv(100):
            data += piece
        assert data == b"bye"
        return time.perf_counter() - start


def test_slow_close_delays_the_close(proxy_server, make_proxy, closer) -> None:
    p = make_proxy(closer.address)
    assert _time_to_eof(p["listen"]) < 0.1
    add_toxic(proxy_server, p["name"], type="slow_close", attributes={"delay": 300})
    assert 0.3 - 0.01 <= _time_to_eof(p["listen"]) < 0.3 + TOL + 0.05


@pytest.mark.parametrize("toxicity,slow", [(0.0, False), (1.0, True)])
def test_toxicity_zero_and_one(proxy_server, make_proxy, echo, toxicity, slow) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="latency", toxicity=toxicity,
              attributes={"latency": 150})
    with connect(p["listen"]) as s:
        assert (round_trip(s) >= 0.15) is slow


def test_toxicity_is_drawn_per_connection(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    add_toxic(proxy_server, p["name"], type="latency", toxicity=0.5,
              attributes={"latency": 80})
    outcomes = []
    for _ in range(16):
        with connect(p["listen"]) as s:
            first = round_trip(s) >= 0.08
            assert (round_trip(s) >= 0.08) is first  # the same draw for the connection
            outcomes.append(first)
    assert 0 < sum(outcomes) < 16, outcomes


def test_toxic_changes_apply_to_open_connections(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    base = f"/proxies/{p['name']}/toxics"
    with connect(p["listen"]) as s:
        assert round_trip(s) < 0.05
        add_toxic(proxy_server, p["name"], type="latency", attributes={"latency": 120})
        assert round_trip(s) >= 0.12
        r = proxy_server.call("PATCH", f"{base}/latency_downstream",
                              {"attributes": {"latency": 10}})
        assert r.json()["attributes"] == {"latency": 10, "jitter": 0}
        assert round_trip(s) < 0.05
        assert proxy_server.call("DELETE", f"{base}/latency_downstream").status_code == 204
        assert round_trip(s) < 0.05


def test_a_one_way_toxic_leaves_the_other_direction_open(proxy_server, make_proxy) -> None:
    """timeout=0 upstream: the client hears the server, the server hears nothing."""
    heard: list[bytes] = []
    go = threading.Event()

    class Talker(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.settimeout(0.05)
            for i in range(100):
                self.request.sendall(b"tick%03d;" % i)
                try:
                    if data := self.request.recv(100):
                        heard.append(data)
                except TimeoutError:
                    pass
                if go.is_set() and i > 10:
                    return

    for peer in serve(Talker):
        p = make_proxy(peer.address)
        add_toxic(proxy_server, p["name"], type="timeout", stream="upstream",
                  attributes={"timeout": 0})
        with connect(p["listen"]) as s:
            s.sendall(b"are you there?")
            got = recv_exactly(s, 8 * 5)
            go.set()
        assert got.startswith(b"tick000;tick001;")
        assert heard == []


def test_changing_toxics_under_load_loses_and_reorders_nothing(
    proxy_server, make_proxy, echo
) -> None:
    """Toxics added, updated and removed while 2 MB stream through: all bytes, in order."""
    p = make_proxy(echo.address)
    base = f"/proxies/{p['name']}/toxics"
    payload = random.Random(3).randbytes(2_000_000)
    received = bytearray()
    with connect(p["listen"], timeout=20) as s:
        def reader() -> None:
            while len(received) < len(payload):
                piece = s.recv(65536)
                if not piece:
                    return
                received.extend(piece)

        def writer() -> None:
            for i in range(0, len(payload), 20_000):
                s.sendall(payload[i : i + 20_000])
                time.sleep(0.001)

        threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
        for t in threads:
            t.start()
        rng = random.Random(4)
        for round_ in range(12):
            stream = rng.choice(["upstream", "downstream"])
            kind, attrs = rng.choice([
                ("latency", {"latency": 5, "jitter": 3}),
                ("slicer", {"average_size": 500, "size_variation": 100, "delay": 10}),
                ("bandwidth", {"rate": 5000}),
                ("slow_close", {"delay": 10}),
            ])
            name = f"{kind}{round_}"
            add_toxic(proxy_server, p["name"], name=name, type=kind, stream=stream,
                      attributes=attrs)
            r = proxy_server.call("PATCH", f"{base}/{name}", {"attributes": attrs})
            assert r.status_code == 200
            if round_ % 3 == 2:
                for toxic in proxy_server.call("GET", base).json():
                    proxy_server.call("DELETE", f"{base}/{toxic['name']}")
        proxy_server.call("POST", "/reset")
        for t in threads:
            t.join(20)
    assert len(received) == len(payload)
    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()


def test_disable_cuts_connections_and_enable_listens_again(proxy_server, make_proxy, echo):
    p = make_proxy(echo.address)
    with connect(p["listen"]) as s:
        round_trip(s)
        r = proxy_server.call("PATCH", f"/proxies/{p['name']}", {"enabled": False})
        assert r.json()["enabled"] is False
        s.settimeout(5)
        with contextlib.suppress(ConnectionResetError):
            assert s.recv(10) == b""
    with pytest.raises(ConnectionRefusedError):
        connect(p["listen"])
    r = proxy_server.call("POST", f"/proxies/{p['name']}", {"enabled": True})
    assert r.json()["listen"] == p["listen"]
    with connect(p["listen"]) as s:
        assert round_trip(s) < 0.05


def test_upstream_down_closes_the_client(make_proxy) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{placeholder.getsockname()[1]}"
        p = make_proxy(dead)
        with connect(p["listen"]) as s:
            assert s.recv(10) == b""
