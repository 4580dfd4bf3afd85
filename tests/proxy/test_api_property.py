"""Property: whatever JSON and paths are thrown at the API, it never answers 5xx, never
crashes, and never leaves a half-created proxy behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from proxytools import ProxyServer, connect, start_proxy_server, stop_proxy_server

NAMES = ["a", "b", "latency_downstream", "timeout_upstream"]
LISTENS = ["127.0.0.1:0", "localhost:0", "[::1]:0", "", "bogus", "127.0.0.1:99999", "a:b:c"]
TYPES = ["latency", "bandwidth", "slow_close", "timeout", "reset_peer", "slicer",
         "limit_data", "noop", "nope", ""]
ATTRS = ["latency", "jitter", "rate", "delay", "timeout", "average_size", "size_variation",
         "bytes"]

scalars = (st.none() | st.booleans() | st.integers() | st.text(max_size=12)
           | st.floats(allow_nan=False, allow_infinity=False))
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8,
)
name = st.sampled_from(NAMES) | st.text(max_size=8)
proxy_body = st.fixed_dictionaries({}, optional={
    "name": name | any_json, "upstream": st.just("127.0.0.1:1") | any_json,
    "listen": st.sampled_from(LISTENS) | any_json, "enabled": st.booleans() | any_json,
})
toxic_body = st.fixed_dictionaries({}, optional={
    "name": name | any_json, "type": st.sampled_from(TYPES) | any_json,
    "stream": st.sampled_from(["upstream", "downstream", "UPSTREAM", "x"]) | any_json,
    "toxicity": st.floats(0, 1) | any_json,
    "attributes": st.dictionaries(st.sampled_from(ATTRS),
                                  st.integers(-5, 10_000) | any_json, max_size=3) | any_json,
})
bodies = (proxy_body | toxic_body | st.lists(proxy_body, max_size=3) | any_json).map(
    lambda b: json.dumps(b).encode()
) | st.binary(max_size=20)


def _paths() -> st.SearchStrategy[str]:
    seg = name.map(lambda s: quote(s, safe=""))
    return st.one_of(
        st.sampled_from(["/proxies", "/reset", "/populate", "/version"]),
        seg.map(lambda p: f"/proxies/{p}"),
        seg.map(lambda p: f"/proxies/{p}/toxics"),
        st.tuples(seg, seg).map(lambda pt: f"/proxies/{pt[0]}/toxics/{pt[1]}"),
        st.text(max_size=15).map(lambda s: "/" + quote(s)),
    )


requests_ = st.lists(
    st.tuples(st.sampled_from(["GET", "POST", "PATCH", "DELETE", "PUT"]), _paths(), bodies),
    min_size=1, max_size=4,
)


@pytest.fixture(scope="module")
def server() -> Iterator[ProxyServer]:
    s = start_proxy_server("--seed", "11", "--log-level", "error")
    yield s
    assert stop_proxy_server(s) == 0


def _names(server: ProxyServer) -> dict[str, Any]:
    r = server.call("GET", "/proxies")
    assert r.status_code == 200
    return r.json()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(calls=requests_)
def test_no_5xx_no_crash_no_half_created_proxy(server: ProxyServer, calls) -> None:
    before = set(_names(server))
    try:
        for method, path, body in calls:
            r = server.call(method, path, data=body)
            assert r.status_code < 500, (method, path, body, r.status_code, r.text)
            after = _names(server)
            added = set(after) - before
            if path == "/populate" and r.status_code in (201, 400, 404, 409):
                listed = {p["name"] for p in (r.json().get("proxies") or [])}
                assert added <= listed
            elif not (method == "POST" and path == "/proxies" and r.status_code == 201):
                assert not added, (method, path, body, r.status_code)
            for proxy in after.values():  # every proxy present is whole and usable
                assert server.call("GET", f"/proxies/{quote(proxy['name'], safe='')}") \
                    .status_code in (200, 404)  # 404 only when the name holds a '/'
                if proxy["enabled"]:
                    connect(proxy["listen"], timeout=2).close()
            before = set(after)
    finally:
        for proxy in _names(server):
            server.call("DELETE", f"/proxies/{quote(proxy, safe='')}")
    assert server.proc.poll() is None
