"""Clients are told a ping interval they can live with, even a sub-second one."""

from __future__ import annotations

import aiohttp
import orjson
import pytest


@pytest.mark.parametrize("interval, advertised_ms", [("0.5", 1000), ("1.2", 2000), ("25", 25000)])
async def test_open_packet_ping_interval(start_server, interval: str,
                                         advertised_ms: int) -> None:
    server = await start_server("--ping-interval", interval, "--ping-timeout", "3")
    async with aiohttp.ClientSession() as http, http.get(
        f"{server.url}/socket.io/?EIO=4&transport=polling"
    ) as response:
        body = await response.text()
    assert body.startswith("0"), body
    open_packet = orjson.loads(body[1:])
    assert open_packet["pingInterval"] == advertised_ms
    assert open_packet["pingTimeout"] == 3000
