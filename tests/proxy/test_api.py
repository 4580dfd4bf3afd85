"""The HTTP API, point by point against Toxiproxy 2.x: raw HTTP and toxiproxy-python."""

from __future__ import annotations

import socket

import pytest
import toxiproxy
from proxytools import ProxyServer, connect, round_trip
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists


def error(r, status: int, message: str) -> None:
    assert r.status_code == status, r.text
    assert r.json() == {"error": message, "status": status}


def test_version_is_json(proxy_server: ProxyServer) -> None:
    r = proxy_server.call("GET", "/version")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json()["version"].startswith("2.12.0")


def test_proxy_lifecycle(proxy_server, echo) -> None:
    body = {"name": "life", "upstream": echo.address, "listen": "127.0.0.1:0"}
    r = proxy_server.call("POST", "/proxies", body)
    assert r.status_code == 201
    created = r.json()
    assert created["name"] == "life" and created["enabled"] is True
    assert created["toxics"] == [] and created["upstream"] == echo.address
    host, port = created["listen"].rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0
    assert proxy_server.call("GET", "/proxies/life").json() == created
    assert proxy_server.call("GET", "/proxies").json()["life"] == created
    assert proxy_server.call("GET", "/proxies/life/toxics").json() == []
    assert proxy_server.call("DELETE", "/proxies/life").status_code == 204
    error(proxy_server.call("GET", "/proxies/life"), 404, "proxy not found")
    with pytest.raises(ConnectionRefusedError):
        connect(created["listen"])


def test_missing_listen_stays_on_loopback(proxy_server, make_proxy, echo) -> None:
    r = proxy_server.call("POST", "/proxies", {"name": "noListen", "upstream": echo.address})
    assert r.status_code == 201
    assert r.json()["listen"].startswith("127.0.0.1:")
    proxy_server.call("DELETE", "/proxies/noListen")


@pytest.mark.parametrize(
    "body,status,message",
    [
        (b"{not json", 400, "bad request body: Expecting property name enclosed in double quotes"),
        (b"", 400, "bad request body: EOF"),
        (b'{"upstream": "127.0.0.1:1"}', 400, "missing required field: name"),
        (b'{"name": "x"}', 400, "missing required field: upstream"),
        (b'{"name": "x", "upstream": "127.0.0.1:1", "enabled": "yes"}', 400,
         "bad request body: json: cannot unmarshal string into Go struct field Proxy.enabled "
         "of type bool"),
        (b"[1, 2]", 400,
         "bad request body: json: cannot unmarshal array into Go value of type toxiproxy.Proxy"),
    ],
)
def test_proxy_create_errors(proxy_server, body, status, message) -> None:
    r = proxy_server.call("POST", "/proxies", data=body)
    error(r, status, message)
    assert "x" not in proxy_server.call("GET", "/proxies").json()


def test_duplicate_proxy_is_409(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    r = proxy_server.call("POST", "/proxies", {"name": p["name"], "upstream": echo.address})
    error(r, 409, "proxy already exists")


def test_taken_listen_address_is_a_clear_error(proxy_server, echo) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        r = proxy_server.call("POST", "/proxies",
                              {"name": "taken", "upstream": echo.address, "listen": address})
        error(r, 409, f"listen tcp {address}: bind: address already in use")
    assert "taken" not in proxy_server.call("GET", "/proxies").json()


def test_bad_listen_address_is_400(proxy_server, echo) -> None:
    r = proxy_server.call("POST", "/proxies",
                          {"name": "bad", "upstream": echo.address, "listen": "nowhere"})
    error(r, 400, "listen tcp nowhere: address nowhere: missing port in address")


def test_unknown_proxy_is_404_everywhere(proxy_server) -> None:
    for method, path in [
        ("GET", "/proxies/nope"), ("PATCH", "/proxies/nope"), ("POST", "/proxies/nope"),
        ("DELETE", "/proxies/nope"), ("GET", "/proxies/nope/toxics"),
        ("POST", "/proxies/nope/toxics"), ("GET", "/proxies/nope/toxics/t"),
        ("PATCH", "/proxies/nope/toxics/t"), ("DELETE", "/proxies/nope/toxics/t"),
    ]:
        error(proxy_server.call(method, path, {"type": "latency"}), 404, "proxy not found")


def test_toxic_defaults_and_errors(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    base = f"/proxies/{p['name']}/toxics"
    r = proxy_server.call("POST", base, {"type": "latency"})
    assert r.status_code == 200  # Toxiproxy answers 200, not 201
    assert r.json() == {"attributes": {"latency": 0, "jitter": 0}, "name": "latency_downstream",
                        "type": "latency", "stream": "downstream", "toxicity": 1}
    error(proxy_server.call("POST", base, {"type": "latency"}), 409, "toxic already exists")
    error(proxy_server.call("POST", base, {"type": "nope"}), 400, "invalid toxic type")
    error(proxy_server.call("POST", base, {"type": "latency", "stream": "sideways"}), 400,
          "stream was invalid, can be either upstream or downstream")
    error(proxy_server.call("POST", base, {"type": "latency", "name": "l2",
                                           "attributes": {"latency": "1"}}), 400,
          "bad request body: json: cannot unmarshal string into Go struct field "
          "LatencyToxic.attributes.latency of type int64")
    error(proxy_server.call("POST", base, data=b"nope"), 400,
          "bad request body: Expecting value")
    error(proxy_server.call("GET", f"{base}/nope"), 404, "toxic not found")
    error(proxy_server.call("PATCH", f"{base}/nope", {}), 404, "toxic not found")
    error(proxy_server.call("DELETE", f"{base}/nope"), 404, "toxic not found")
    assert [t["name"] for t in proxy_server.call("GET", base).json()] == ["latency_downstream"]


def test_toxic_update_merges_attributes_by_patch_and_post(proxy_server, make_proxy, echo):
    p = make_proxy(echo.address)
    base = f"/proxies/{p['name']}/toxics"
    proxy_server.call("POST", base, {"type": "latency", "stream": "upstream",
                                     "attributes": {"latency": 10, "jitter": 5}})
    r = proxy_server.call("PATCH", f"{base}/latency_upstream", {"attributes": {"latency": 20}})
    assert r.json()["attributes"] == {"latency": 20, "jitter": 5}
    r = proxy_server.call("POST", f"{base}/latency_upstream", {"toxicity": 0.5})
    assert r.json()["toxicity"] == 0.5 and r.json()["attributes"]["latency"] == 20
    error(proxy_server.call("PATCH", f"{base}/latency_upstream",
                            {"attributes": {"latency": 1.5}}), 400,
          "bad request body: json: cannot unmarshal number 1.5 into Go struct field "
          "LatencyToxic.attributes.latency of type int64")
    assert proxy_server.call("GET", f"{base}/latency_upstream").json()["attributes"] == {
        "latency": 20, "jitter": 5}


def test_reset_enables_all_and_removes_all_toxics(proxy_server, make_proxy, echo) -> None:
    p = make_proxy(echo.address)
    proxy_server.call("POST", f"/proxies/{p['name']}/toxics", {"type": "timeout"})
    proxy_server.call("PATCH", f"/proxies/{p['name']}", {"enabled": False})
    assert proxy_server.call("POST", "/reset").status_code == 204
    now = proxy_server.call("GET", f"/proxies/{p['name']}").json()
    assert now["enabled"] is True and now["toxics"] == []
    assert now["listen"] == p["listen"]
    with connect(p["listen"]) as s:
        round_trip(s)


def test_update_upstream_restarts_the_proxy(proxy_server, make_proxy, echo) -> None:
    p = make_proxy("127.0.0.1:1")
    r = proxy_server.call("PATCH", f"/proxies/{p['name']}", {"upstream": echo.address})
    assert r.json()["upstream"] == echo.address and r.json()["enabled"] is True
    with connect(r.json()["listen"]) as s:
        round_trip(s)


def test_populate_creates_keeps_and_replaces(proxy_server, echo) -> None:
    body = [{"name": "popA", "upstream": echo.address, "listen": "127.0.0.1:0"},
            {"name": "popB", "upstream": echo.address, "listen": "127.0.0.1:0",
             "enabled": False}]
    r = proxy_server.call("POST", "/populate", body)
    assert r.status_code == 201
    first = {p["name"]: p for p in r.json()["proxies"]}
    assert first["popA"]["enabled"] and not first["popB"]["enabled"]
    again = [{"name": "popA", "upstream": echo.address, "listen": first["popA"]["listen"]}]
    r = proxy_server.call("POST", "/populate", again)
    assert r.json()["proxies"][0]["listen"] == first["popA"]["listen"]  # identical: kept
    r = proxy_server.call("POST", "/populate", [{"name": "popC", "upstream": "x:1"},
                                                {"upstream": "x:1"}])
    error_body = r.json()
    assert r.status_code == 400 and error_body["error"] == "missing required field: name at proxy 2"
    assert "popC" not in proxy_server.call("GET", "/proxies").json()  # nothing half-done
    assert proxy_server.call("POST", "/populate", []).json() == {"proxies": None}
    for name in ("popA", "popB"):
        proxy_server.call("DELETE", f"/proxies/{name}")


def test_browsers_are_refused(proxy_server) -> None:
    r = proxy_server.call("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0"})
    assert r.status_code == 403


def test_unknown_routes_and_methods(proxy_server) -> None:
    assert proxy_server.call("GET", "/nope").status_code == 404
    assert proxy_server.call("PUT", "/proxies").status_code == 405


@pytest.fixture
def client(proxy_server: ProxyServer):
    """toxiproxy-python pointed at the embedded server (its host/port are global)."""
    saved = APIConsumer.host, APIConsumer.port
    host, port = proxy_server.url.removeprefix("http://").rsplit(":", 1)
    server = toxiproxy.Toxiproxy()
    server.update_api_consumer(host, int(port))
    yield server
    APIConsumer.host, APIConsumer.port = saved


def test_toxiproxy_python_works_unchanged(client, echo) -> None:
    assert client.running()
    assert b"2.12.0" in client.version()
    proxy = client.create(upstream=echo.address, name="pyclient")
    try:
        assert client.get_proxy("pyclient").upstream == echo.address
        with pytest.raises(ProxyExists):
            client.create(upstream=echo.address, name="pyclient")
        proxy.add_toxic(type="latency", attributes={"latency": 100})
        with pytest.raises(InvalidToxic):
            proxy.add_toxic(type="nope")
        toxic = proxy.toxics()["latency_downstream"]
        assert toxic.attributes == {"latency": 100, "jitter": 0}
        with connect(proxy.listen) as s:
            assert round_trip(s) >= 0.1
        proxy.destroy_toxic("latency_downstream")
        with pytest.raises(NotFound):
            proxy.destroy_toxic("latency_downstream")
        with proxy.down(), pytest.raises(ConnectionRefusedError):
            connect(proxy.listen)
        with connect(proxy.listen) as s:
            assert round_trip(s) < 0.05
        assert client.reset()
    finally:
        assert client.destroy(proxy)
    assert client.get_proxy("pyclient") is None
