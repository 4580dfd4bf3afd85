"""What `DirectSocket.write_now` assumes about aiohttp: its `closed` is the `_closed` attribute."""

from __future__ import annotations

import aiohttp
from aiohttp import web
from ws_app import websocket_app


async def test_websocket_closed_is_the_closed_attribute_through_a_real_close() -> None:
    seen: list[tuple[bool, bool]] = []

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        seen.append((ws.closed, ws._closed))
        await ws.receive()  # the client's close
        seen.append((ws.closed, ws._closed))
        return ws

    async with (
        websocket_app(handler) as url, aiohttp.ClientSession() as http,
        http.ws_connect(url) as ws,
    ):
        await ws.close()
    assert seen == [(False, False), (True, True)]
