"""A proxy: one listening socket, its relayed connections and its toxic chains.

Mirrors Toxiproxy's `proxy.go`: disabling closes every connection and the listener;
enabling listens again on the same (already resolved) address; changing `listen` or
`upstream` restarts it.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
from typing import Any

from faultlab.harness.proxy.errors import ApiError
from faultlab.harness.proxy.link import Connection, ConnectionOwner, split_host_port
from faultlab.harness.proxy.toxics.base import Toxic, ToxicEntry

log = logging.getLogger("faultlab.proxy")

BACKLOG = 4096
DIRECTIONS = ("upstream", "downstream")


def format_address(host: str, port: int) -> str:
    """Go's TCPAddr.String(): IPv6 hosts in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def resolve(listen: str) -> tuple[int, tuple[Any, ...], str]:
    """(family, sockaddr, 'ip:port') for a listen address, IPv4 first; ApiError if bad."""
    try:
        host, port = split_host_port(listen)
    except ValueError as exc:
        raise ApiError(f"listen tcp {listen}: {exc}", 400) from None
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            host or "0.0.0.0", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as exc:
        raise ApiError(f"listen tcp {listen}: lookup {host}: {exc}", 400) from None
    family, _, _, _, sockaddr = sorted(infos, key=lambda i: i[0] != socket.AF_INET)[0]
    return family, sockaddr, format_address(sockaddr[0], port)


class Proxy(ConnectionOwner):
    """One named proxy; all methods run on the event loop of the API server."""

    def __init__(
        self, name: str, listen: str, upstream: str, rng: random.Random, splice: bool = True
    ) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.rng = rng
        self.splice = splice
        self.connections: set[Connection] = set()
        self.toxics: dict[str, list[ToxicEntry]] = {d: [] for d in DIRECTIONS}
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": [t.to_json() for t in self.toxic_list()],
        }

    # --- listening ------------------------------------------------------------------
    async def start(self) -> None:
        """Listen (a no-op when already listening); ApiError when the address is bad
        (400) or taken (409)."""
        if self.enabled:
            return
        family, sockaddr, _ = await resolve(self.listen)
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(sockaddr)
            sock.setblocking(False)
            self._server = await asyncio.get_running_loop().create_server(
                self._accept, sock=sock, backlog=BACKLOG
            )
        except OSError as exc:
            sock.close()
            status = 409 if exc.errno == errno.EADDRINUSE else 400
            reason = (exc.strerror or str(exc)).lower()
            raise ApiError(f"listen tcp {self.listen}: bind: {reason}", status) from None
        host, port = sock.getsockname()[:2]
        self.listen = format_address(host, port)
        self.enabled = True
        log.info("proxy %s listening on %s, upstream %s", self.name, self.listen, self.upstream)

    def stop(self) -> None:
        """Stop listening and drop every open connection."""
        if not self.enabled:
            return
        self.enabled = False
        if self._server is not None:
            self._server.close()
            self._server = None
        for conn in list(self.connections):
            conn.abort()
        self.connections.clear()
        log.info("proxy %s stopped", self.name)

    async def differs(self, listen: str, upstream: str) -> bool:
        _, _, resolved = await resolve(listen)
        return resolved != self.listen or upstream != self.upstream

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Toxiproxy's Proxy.Update: restart on a new address, then apply `enabled`."""
        if await self.differs(listen, upstream):
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled:
            self.stop()

    def _accept(self) -> asyncio.Protocol:
        return Connection(self).client

    # --- toxics ---------------------------------------------------------------------
    def chain(self, direction: str) -> list[ToxicEntry]:
        return list(self.toxics[direction])

    def toxic_list(self) -> list[ToxicEntry]:
        return [t for d in DIRECTIONS for t in self.toxics[d]]

    def find_toxic(self, name: str) -> ToxicEntry | None:
        return next((t for t in self.toxic_list() if t.name == name), None)

    def _links(self, direction: str) -> list[Any]:
        return [c.links[direction] for c in list(self.connections) if direction in c.links]

    def add_toxic(self, entry: ToxicEntry) -> None:
        """Append to the stream's chain, on every open connection too."""
        self.toxics[entry.direction].append(entry)
        for link in self._links(entry.direction):
            link.add(entry)

    async def update_toxic(self, entry: ToxicEntry, toxic: Toxic, toxicity: float) -> None:
        entry.toxic, entry.toxicity = toxic, toxicity
        await asyncio.gather(*(link.update(entry) for link in self._links(entry.direction)))

    async def remove_toxic(self, entry: ToxicEntry) -> None:
        self.toxics[entry.direction].remove(entry)
        await asyncio.gather(*(link.remove(entry) for link in self._links(entry.direction)))

    async def reset_toxics(self) -> None:
        for entry in self.toxic_list():
            await self.remove_toxic(entry)
