"""Fixtures for the proxy tests: a real `faultlab proxy` process and real TCP peers."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from proxytools import EchoHandler, Peer, ProxyServer, serve, start_proxy_server, stop_proxy_server


@pytest.fixture(scope="session")
def proxy_server() -> Iterator[ProxyServer]:
    server = start_proxy_server("--seed", "7")
    yield server
    assert stop_proxy_server(server) == 0


_names = itertools.count()


@pytest.fixture
def make_proxy(proxy_server: ProxyServer) -> Iterator[Callable[..., dict[str, Any]]]:
    """Create proxies with unique names on the shared server; delete them afterwards."""
    created: list[str] = []

    def make(upstream: str, **fields: Any) -> dict[str, Any]:
        name = fields.pop("name", f"t{os.getpid()}_{next(_names)}")
        body = {"name": name, "upstream": upstream, "listen": "127.0.0.1:0", **fields}
        r = proxy_server.call("POST", "/proxies", body)
        assert r.status_code == 201, r.text
        created.append(name)
        return r.json()

    yield make
    for name in created:
        proxy_server.call("DELETE", f"/proxies/{name}")


@pytest.fixture
def echo() -> Iterator[Peer]:
    yield from serve(EchoHandler)
