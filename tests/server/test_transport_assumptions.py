"""What `DirectSocket.write_now` assumes about aiohttp: its `closed` is the `_closed` attribute."""

from __future__ import annotations

import aiohttp
from aiohttp import web


async def test_websocket_closed_is_the_closed_attribute_through_a_real_close() -> None:
    seen: list[tuple[bool, bool]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        seen.append((ws.closed, ws._closed))
        await ws.receive()  # the client's close
        seen.append((ws.closed, ws._closed))
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(f"ws://127.0.0.1:{port}/") as ws,
        ):
            await ws.close()
    finally:
        await runner.cleanup()
    assert seen == [(False, False), (True, True)]
