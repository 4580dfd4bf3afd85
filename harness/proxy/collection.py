"""All proxies of one server, keyed by name (Toxiproxy's `proxy_collection.go`).

Every change goes through one lock, so API calls that race each other (or a toxic
change that waits for live connections) apply one at a time, as in Toxiproxy.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

from faultlab.harness.proxy.errors import PROXY_EXISTS, PROXY_NOT_FOUND, ApiError
from faultlab.harness.proxy.proxy import Proxy


@dataclass
class ProxySpec:
    """A proxy as asked for by a create or populate request."""

    name: str
    listen: str
    upstream: str
    enabled: bool


class ProxyCollection:
    def __init__(self, rng: random.Random, splice: bool = True) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.lock = asyncio.Lock()
        self.rng = rng
        self.splice = splice  # how new proxies relay untoxic links (see link.py)

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    async def add(self, spec: ProxySpec) -> Proxy:
        """Create and (if enabled) start; nothing is kept when starting fails."""
        if spec.name in self.proxies:
            raise PROXY_EXISTS
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.rng, self.splice)
        if spec.enabled:
            await proxy.start()
        self.proxies[spec.name] = proxy
        return proxy

    async def add_or_replace(self, spec: ProxySpec) -> Proxy:
        """Populate's rule: keep an identical proxy, restart one that differs."""
        existing = self.proxies.get(spec.name)
        if existing is not None:
            if not await existing.differs(spec.listen, spec.upstream):
                return existing
            existing.stop()
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.rng, self.splice)
        if spec.enabled:
            await proxy.start()
        self.proxies[spec.name] = proxy
        return proxy

    async def populate(self, specs: list[ProxySpec]) -> tuple[list[Proxy], ApiError | None]:
        """Create or replace each in order; stop at the first failure, reporting it."""
        done: list[Proxy] = []
        for spec in specs:
            try:
                done.append(await self.add_or_replace(spec))
            except ApiError as exc:
                return done, exc
        return done, None

    def remove(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]

    async def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        for proxy in list(self.proxies.values()):
            await proxy.start()
            await proxy.reset_toxics()

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
