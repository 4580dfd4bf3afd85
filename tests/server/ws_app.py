"""A bare aiohttp websocket endpoint on 127.0.0.1 for tests of aiohttp-level assumptions."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def websocket_app(handler: Handler) -> AsyncIterator[str]:
    """Serve `handler` at `/`; yields its ws:// URL, and cleans up however the test ends."""
    app = web.Application()
    app.router.add_get("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield f"ws://127.0.0.1:{runner.addresses[0][1]}/"
    finally:
        await runner.cleanup()
