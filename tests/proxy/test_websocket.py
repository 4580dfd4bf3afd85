"""A Socket.IO websocket through the proxy: slowed by latency, cut by enabled=false, and
reconnecting once the proxy is enabled again."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import socketio
from aiohttp import web

from faultlab.harness.toxiproxy import ProxyControl, embedded_proxy


@pytest.fixture
async def sio_server() -> AsyncIterator[str]:
    sio = socketio.AsyncServer(async_mode="aiohttp", ping_interval=1, ping_timeout=1)

    @sio.on("ping")
    async def ping(sid: str, data: str) -> str:
        return data

    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def _wait(event: asyncio.Event, deadline: float, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), deadline)
    except TimeoutError:
        raise AssertionError(f"no {what} within {deadline}s") from None


async def test_websocket_survives_latency_and_reconnects_after_a_cut(tmp_path, sio_server):
    async with embedded_proxy(tmp_path / "proxy.log") as api:
        control = await ProxyControl.connect(api, shared=False, run_id="ws")
        info = await control.create("ws", sio_server)
        client = socketio.AsyncClient(reconnection_delay=0.1, reconnection_delay_max=0.2)
        connected, disconnected = asyncio.Event(), asyncio.Event()
        client.on("connect", connected.set)
        client.on("disconnect", lambda *reason: disconnected.set())
        await client.connect(f"http://{info.listen}", transports=["websocket"],
                             wait_timeout=5)
        try:
            assert await client.call("ping", "a", timeout=5) == "a"
            await control.add_toxic("ws", "latency", attributes={"latency": 200})
            start = time.monotonic()
            assert await client.call("ping", "b", timeout=5) == "b"
            assert time.monotonic() - start >= 0.2
            await control.heal()

            connected.clear()
            await control.disable("ws")
            await _wait(disconnected, 5, "disconnect after enabled=false")
            assert not client.connected
            await control.enable("ws")
            await _wait(connected, 10, "reconnection after enabled=true")
            assert await client.call("ping", "c", timeout=5) == "c"
        finally:
            await client.disconnect()
            await control.close()
