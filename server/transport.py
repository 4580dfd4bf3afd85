"""The websocket transport without permessage-deflate.

The official client offers permessage-deflate and the official server declines it
by default (`perMessageDeflate: false`); aiohttp would accept it and then deflate
every frame for every recipient, which was most of a broadcast's CPU. This keeps
the official server's default. python-engineio picks its websocket class from its
driver table; the server gets its own copy of that table with this class.
"""

from __future__ import annotations

from typing import Any

from aiohttp.web import WebSocketResponse
from engineio.async_drivers.aiohttp import WebSocket


class PlainWebSocket(WebSocket):  # type: ignore[misc]
    """engineio's aiohttp websocket, with compression off."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def use_plain_websockets(eio: Any) -> None:
    """Make this engine.io server answer websockets with `PlainWebSocket`."""
    eio._async = {**eio._async, "websocket": PlainWebSocket}
