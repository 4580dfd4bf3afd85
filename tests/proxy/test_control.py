"""ProxyControl: the harness's one async API, on an embedded proxy it starts and reaps."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest
import requests
from proxytools import connect, round_trip

from faultlab.harness.toxiproxy import ProxyControl, ProxyControlError, embedded_proxy


async def _rtt(listen: str) -> float:
    def measure() -> float:
        with connect(listen) as s:
            return round_trip(s)
    return await asyncio.to_thread(measure)


async def test_control_drives_every_fault(tmp_path: Path, echo) -> None:
    async with embedded_proxy(tmp_path / "proxy.log") as api:
        control = await ProxyControl.connect(api, shared=False, run_id="r1")
        assert (await control.version()).startswith("2.12.0")
        info = await control.create("group0", echo.address)
        assert info.name == info.server_name == "group0" and info.listen_port > 0
        name = await control.add_toxic("group0", "latency", attributes={"latency": 120})
        assert name == "latency_downstream"
        assert await _rtt(info.listen) >= 0.12
        await control.update_toxic("group0", name, {"latency": 1})
        assert (await control.get("group0"))["toxics"][0]["attributes"]["latency"] == 1
        await control.remove_toxic("group0", name)
        assert await _rtt(info.listen) < 0.05
        await control.disable("group0")
        with pytest.raises(ConnectionRefusedError):
            connect(info.listen)
        await control.enable("group0")
        await control.add_toxic("group0", "timeout", stream="upstream", attributes={"timeout": 0})
        await control.disable("group0")
        await control.heal()
        state = await control.get("group0")
        assert state["enabled"] and state["toxics"] == []
        assert await _rtt(info.listen) < 0.05
        with pytest.raises(ProxyControlError, match="invalid toxic type"):
            await control.add_toxic("group0", "nope", attributes={})
        with pytest.raises(ProxyControlError, match="not created by this run"):
            await control.disable("other")
        await control.close()
        assert requests.get(f"{api}/proxies", timeout=5).json() == {}
        pid = _pid_of(api)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def _pid_of(api: str) -> int:
    port = int(api.rsplit(":", 1)[1])
    for conn in psutil.net_connections("tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN:
            return conn.pid
    raise AssertionError("no process listens on the API port")


async def test_shared_server_runs_do_not_collide(tmp_path: Path, echo) -> None:
    """Two runs on one server: prefixed names, and cleanup deletes only a run's own."""
    async with embedded_proxy(tmp_path / "proxy.log") as api:
        a = await ProxyControl.connect(api, shared=True, run_id="runA")
        b = await ProxyControl.connect(api, shared=True, run_id="runB")
        pa, pb = await asyncio.gather(a.create("group0", echo.address),
                                      b.create("group0", echo.address))
        assert {pa.server_name, pb.server_name} == {"runA-group0", "runB-group0"}
        await a.add_toxic("group0", "latency", attributes={"latency": 150})
        await b.heal()  # must not touch run A's toxic
        assert await _rtt(pa.listen) >= 0.15
        await a.close()
        assert set(requests.get(f"{api}/proxies", timeout=5).json()) == {"runB-group0"}
        assert await _rtt(pb.listen) < 0.05
        await b.close()


async def test_two_controls_on_two_servers_do_not_cross_wires(tmp_path: Path, echo) -> None:
    """toxiproxy-python keeps host/port globally; concurrent calls must still go right."""
    async with embedded_proxy(tmp_path / "one.log") as one, \
            embedded_proxy(tmp_path / "two.log") as two:
        c1 = await ProxyControl.connect(one, shared=False, run_id="x")
        c2 = await ProxyControl.connect(two, shared=False, run_id="y")
        await asyncio.gather(*(c.create(f"p{i}", echo.address)
                               for i in range(6) for c in (c1, c2)))
        for api in (one, two):
            assert len(requests.get(f"{api}/proxies", timeout=5).json()) == 6


async def test_unreachable_server_is_a_clear_error() -> None:
    start = time.monotonic()
    with pytest.raises(ProxyControlError, match=r"not running|unreachable"):
        await ProxyControl.connect("http://127.0.0.1:1", shared=True, run_id="z")
    assert time.monotonic() - start < 5
