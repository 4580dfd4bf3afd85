"""One small async API over a Toxiproxy server: the embedded one or a real, shared one.

The rest of the harness talks to proxies only through `ProxyControl`. It drives
toxiproxy-python, whose host and port are class attributes of `APIConsumer` (global
state): every call sets them and runs under one lock, in a worker thread, so the
event loop never blocks and two controls in one process never cross wires. What the
client lacks (updating a toxic, reading one proxy) is done with `requests`, as it does.

On a shared server (`TOXIPROXY_URL`), names are prefixed with the run id and cleanup
deletes only this run's proxies — never `/reset` — so parallel runs do not collide.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
import toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from faultlab.harness.processes import Supervisor, faultlab_argv

log = logging.getLogger("faultlab.toxiproxy")
T = TypeVar("T")
CALL_TIMEOUT = 30.0


class ProxyControlError(RuntimeError):
    """The proxy server refused a request or could not be reached; says which and why."""


@dataclass(frozen=True)
class ProxyInfo:
    """A proxy created by this run: `name` is what the run calls it."""

    name: str
    server_name: str
    listen_host: str
    listen_port: int
    upstream: str

    @property
    def listen(self) -> str:
        return f"{self.listen_host}:{self.listen_port}"


class _Client:
    """toxiproxy-python pointed at one server; its global host/port are set per call."""

    _lock = threading.Lock()  # guards APIConsumer's class attributes, shared by all

    def __init__(self, api_url: str) -> None:
        parts = urlsplit(api_url if "://" in api_url else f"http://{api_url}")
        if not parts.hostname or not parts.port:
            raise ProxyControlError(f"proxy API URL {api_url!r} needs a host and a port")
        self.host, self.port = parts.hostname, parts.port
        self.base = f"http://{self.host}:{self.port}"

    async def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def locked() -> T:
            with self._lock:
                APIConsumer.host, APIConsumer.port = self.host, self.port
                return fn(*args, **kwargs)

        try:
            return await asyncio.wait_for(asyncio.to_thread(locked), CALL_TIMEOUT)
        except (ProxyExists, NotFound, InvalidToxic) as exc:
            detail = _message(exc.args[0] if exc.args else exc)
            raise ProxyControlError(f"{what}: {detail}") from None
        except (requests.RequestException, TimeoutError) as exc:
            raise ProxyControlError(f"{what}: proxy API {self.base} unreachable: {exc}") from None
        except (KeyError, ValueError) as exc:  # toxiproxy-python passes other errors on
            raise ProxyControlError(f"{what}: unexpected answer from {self.base}: {exc}") from None

    def request(self, method: str, path: str, body: Any = None) -> Any:
        """A raw API call, for what toxiproxy-python does not offer (blocking)."""
        response = requests.request(method, self.base + path, json=body, timeout=CALL_TIMEOUT)
        if response.status_code >= 400:
            raise ProxyControlError(
                f"{method} {path}: {response.status_code} {_message(response.content)}"
            )
        return response.json() if response.content else None


def _message(content: Any) -> str:
    """The `error` of a Toxiproxy error body, else the body as text."""
    text = content.decode(errors="replace") if isinstance(content, bytes) else str(content)
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        return str(json.loads(text)["error"])
    return text.strip()


def _split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]"), int(port)


class ProxyControl:
    """Create proxies and inject faults for one run (see the module docstring)."""

    def __init__(self, client: _Client, *, shared: bool, run_id: str) -> None:
        self._client = client
        self.shared = shared
        self.run_id = run_id
        self.proxies: dict[str, ProxyInfo] = {}

    @classmethod
    async def connect(cls, api_url: str, *, shared: bool, run_id: str) -> ProxyControl:
        """Bind to a server and check that it answers."""
        control = cls(_Client(api_url), shared=shared, run_id=run_id)
        await control.version()
        return control

    def _server_name(self, name: str) -> str:
        return f"{self.run_id}-{name}" if self.shared else name

    def _proxy(self, name: str) -> toxiproxy.Proxy:
        info = self.proxies.get(name)
        if info is None:
            raise ProxyControlError(f"proxy {name!r} was not created by this run")
        return toxiproxy.Proxy(
            name=info.server_name, upstream=info.upstream, enabled=True, listen=info.listen
        )

    async def version(self) -> str:
        raw = await self._client.call("version", toxiproxy.Toxiproxy().version)
        if raw is None:
            raise ProxyControlError(f"proxy API {self._client.base} is not running")
        text = raw.decode(errors="replace").strip()
        with contextlib.suppress(ValueError, KeyError, TypeError):
            return str(json.loads(text)["version"])
        return text  # Toxiproxy before 2.6.0 answered plain text

    async def create(
        self, name: str, upstream: str, listen: str = "127.0.0.1:0"
    ) -> ProxyInfo:
        """A new enabled proxy; `listen` port 0 picks a free port (reported back)."""
        server_name = self._server_name(name)
        created = await self._client.call(
            f"create proxy {server_name}", toxiproxy.Toxiproxy().create,
            upstream=upstream, name=server_name, listen=listen, enabled=True,
        )
        host, port = _split_listen(created.listen)
        info = ProxyInfo(name, server_name, host, port, upstream)
        self.proxies[name] = info
        return info

    async def get(self, name: str) -> dict[str, Any]:
        """The proxy as the server shows it (listen, enabled, toxics)."""
        path = f"/proxies/{self._server_name(name)}"
        return await self._client.call(f"get proxy {name}", self._client.request, "GET", path)

    async def add_toxic(
        self, proxy: str, type: str, *, stream: str = "downstream", toxicity: float = 1.0,
        attributes: dict[str, Any], name: str | None = None,
    ) -> str:
        """Add a toxic (it applies to open connections too); returns its name."""
        toxic = name or f"{type}_{stream}"
        await self._client.call(
            f"add toxic {toxic} to {proxy}", self._proxy(proxy).add_toxic,
            type=type, stream=stream, name=toxic, toxicity=toxicity, attributes=attributes,
        )
        return toxic

    async def update_toxic(self, proxy: str, toxic: str, attributes: dict[str, Any]) -> None:
        """Change some attributes of a toxic in place (live connections included)."""
        path = f"/proxies/{self._server_name(proxy)}/toxics/{toxic}"
        await self._client.call(
            f"update toxic {toxic} of {proxy}", self._client.request, "PATCH", path,
            {"attributes": attributes},
        )

    async def remove_toxic(self, proxy: str, toxic: str) -> None:
        await self._client.call(
            f"remove toxic {toxic} from {proxy}", self._proxy(proxy).destroy_toxic, toxic
        )

    async def disable(self, proxy: str) -> None:
        """Cut: close every connection of the proxy and stop listening."""
        await self._client.call(f"disable {proxy}", self._proxy(proxy).disable)

    async def enable(self, proxy: str) -> None:
        """Listen again on the same address."""
        await self._client.call(f"enable {proxy}", self._proxy(proxy).enable)

    async def heal(self) -> None:
        """Remove every toxic and enable every proxy of this run (never `/reset`)."""
        for name in self.proxies:
            handle = self._proxy(name)
            toxics = await self._client.call(f"list toxics of {name}", handle.toxics)
            for toxic in toxics:
                await self.remove_toxic(name, toxic)
            await self.enable(name)

    async def close(self) -> None:
        """Delete this run's proxies; errors are logged, never raised (cleanup path)."""
        for name in list(self.proxies):
            try:
                await self._client.call(f"delete {name}", self._proxy(name).destroy)
            except ProxyControlError as exc:
                log.warning("could not delete proxy %s: %s", name, exc)
            del self.proxies[name]


@contextlib.asynccontextmanager
async def embedded_proxy(
    log_path: Path, *, supervisor: Supervisor | None = None, seed: int | None = None
) -> AsyncIterator[str]:
    """Run `faultlab proxy` as a child on a free loopback port; yields its API URL.

    The child is reaped when the block exits (or with `supervisor`, when it closes).
    """
    argv = faultlab_argv("proxy", "--host", "127.0.0.1", "--port", "0")
    if seed is not None:
        argv += ["--seed", str(seed)]
    async with contextlib.AsyncExitStack() as stack:
        if supervisor is None:
            supervisor = await stack.enter_async_context(Supervisor())
        child = await supervisor.spawn("proxy", argv, log_path, ready_url="/version")
        try:
            assert child.url is not None
            yield child.url
        finally:
            await child.terminate(timeout=5.0)
