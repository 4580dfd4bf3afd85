"""The broadcast's hand-built websocket frames arrive, at aiohttp's client, as their texts."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web
from ws_app import websocket_app

from faultlab.server.transport import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 70000])
async def test_frames_of_every_length_class_arrive_as_their_text(size: int) -> None:
    texts = ["é" * (size // 2) + "x" * (size % 2), '42["chat message","hi",1]']

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        assert request.transport is not None
        request.transport.write(b"".join(text_frame(t) for t in texts))
        await ws.receive()
        return ws

    async with (
        websocket_app(handler) as url, aiohttp.ClientSession() as http,
        http.ws_connect(url, max_msg_size=2**20) as ws,
    ):
        got = [await ws.receive(timeout=10) for _ in texts]
        await ws.close()
    assert [(m.type, m.data) for m in got] == [(aiohttp.WSMsgType.TEXT, t) for t in texts]
