"""Run the embedded Toxiproxy-compatible server until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import random
import resource
import signal
import sys
from pathlib import Path

from aiohttp import web

from faultlab.harness.proxy import schema
from faultlab.harness.proxy.api import make_app
from faultlab.harness.proxy.collection import ProxyCollection
from faultlab.harness.proxy.errors import ApiError
from faultlab.harness.proxy.proxy import format_address

log = logging.getLogger("faultlab.proxy")


class ConfigError(Exception):
    """The --config file could not be read or applied."""


async def populate_from_file(proxies: ProxyCollection, path: Path) -> int:
    """Create the proxies listed in a JSON file (the /populate shape)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config {path}: {exc.strerror or exc}") from None
    try:
        specs = schema.populate(schema.decode(raw))
    except ApiError as exc:
        raise ConfigError(f"config {path}: {exc.message}") from None
    async with proxies.lock:
        done, error = await proxies.populate(specs)
    if error is not None:
        raise ConfigError(f"config {path}: proxy {specs[len(done)].name}: {error.message}")
    return len(done)


def raise_file_limit() -> None:
    """Allow as many sockets as the hard limit permits (Go's runtime does the same
    for Toxiproxy): each relayed connection holds two."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(
    host: str, port: int, config: Path | None, seed: int | None, splice: bool = True
) -> int:
    """Serve until a signal; returns the exit code."""
    raise_file_limit()
    proxies = ProxyCollection(random.Random(seed), splice)
    runner = web.AppRunner(make_app(proxies), access_log=None, handle_signals=False)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if config is not None:
            count = await populate_from_file(proxies, config)
            log.info("populated %d proxies from %s", count, config)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            print(f"faultlab proxy: cannot listen on {host}:{port}: {exc.strerror}",
                  file=sys.stderr)
            return 1
        server = site._server  # aiohttp exposes the bound port only here (any loop's Server)
        assert server is not None
        bound = server.sockets[0].getsockname()
        print(f"faultlab-proxy listening on http://{format_address(host, bound[1])}", flush=True)
        await stop.wait()
        log.info("shutting down")
        return 0
    except ConfigError as exc:
        print(f"faultlab proxy: {exc}", file=sys.stderr)
        return 2
    finally:
        proxies.close()
        await runner.cleanup()
