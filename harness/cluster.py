"""The cluster: everything one scenario runs against, brought up and torn down together.

A run directory, the target's store, the server, the fault proxy, and G client-group
proxies in front of the server (client i connects through group i % G, so a subset
of the clients can be cut off while the others carry on). Leaving the block tears
all of it down, whatever happened inside.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import aiohttp

from faultlab.harness.processes import Child, Supervisor
from faultlab.harness.rundir import RunDir
from faultlab.harness.store import max_id, read_rows, snapshot
from faultlab.harness.targets import Target, free_port
from faultlab.harness.toxiproxy import ProxyControl, ProxyInfo, embedded_proxy

HOST = "127.0.0.1"


class ClusterError(RuntimeError):
    """The cluster cannot do what was asked (the message says why)."""


@dataclass(frozen=True)
class Proxies:
    """The proxy control and the names of the client-group proxies, in group order."""

    control: ProxyControl
    groups: tuple[ProxyInfo, ...]

    @property
    def names(self) -> list[str]:
        return [p.name for p in self.groups]


class Cluster:
    """Store + server + proxy + client-group proxies for one scenario (async context)."""

    def __init__(
        self,
        run: RunDir,
        target: Target,
        level: str,
        recovery: str = "off",
        *,
        groups: int = 1,
        knobs: Mapping[str, float] | None = None,
        server_env: Mapping[str, str] | None = None,
        server_args: Sequence[str] = (),
        supervisor: Supervisor | None = None,
        run_id: str | None = None,
        proxy: bool = True,
        seed: int | None = None,
    ) -> None:
        if groups < 1:
            raise ClusterError(f"groups must be >= 1, not {groups}")
        reason = target.supports(level, recovery)
        if reason is not None:
            raise ClusterError(reason)
        self.run = run
        self.target = target
        self.level = level
        self.recovery = recovery
        self.groups = groups
        self.knobs = dict(knobs or {})
        self.server_env = dict(server_env or {})
        self.server_args = list(server_args)
        self.run_id = run_id or run.path.name
        self._own_supervisor = supervisor is None
        self.supervisor = supervisor or Supervisor()
        self.db = run.db
        self.server: Child | None = None
        self.with_proxy = proxy
        self.seed = seed
        self.proxies: Proxies | None = None
        self.proxy_label = "none"  # what the report names as the proxy used
        self._stack = contextlib.AsyncExitStack()
        self.store_max_id = 0
        self._port = 0
        self._http: aiohttp.ClientSession | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            self._http = aiohttp.ClientSession()
            self.store_max_id = await asyncio.to_thread(max_id, self.target.store, self.db)
            if self.with_proxy:  # both take a second to start: start them side by side
                server = asyncio.ensure_future(self.start_server())
                proxy = asyncio.ensure_future(self._start_proxy_api())
                try:
                    await asyncio.gather(server, proxy)
                except BaseException:
                    for task in (server, proxy):
                        task.cancel()
                    await asyncio.gather(server, proxy, return_exceptions=True)
                    raise
                await self._create_proxies(proxy.result())
            else:
                await self.start_server()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Tear everything down; safe to call twice and after a partial start."""
        if self.proxies is not None:
            with contextlib.suppress(Exception):
                await self.proxies.control.close()
            self.proxies = None
        await self._stack.aclose()
        if self.server is not None:
            await asyncio.shield(self.server.kill())
        if self._own_supervisor:
            await self.supervisor.close()
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- the server ----------------------------------------------------------------------

    def _values(self, port: int) -> dict[str, str]:
        return self.target.values(host=HOST, port=port, db=self.db, delivery=self.level,
                                  recovery=self.recovery, knobs=self.knobs)

    def _command(self, port: int) -> tuple[list[str], dict[str, str]]:
        values = self._values(port)
        argv = [*self.target.argv(values), *self.server_args]
        env = {**self.target.environment(values), **self.server_env}
        return argv, env

    @property
    def server_url(self) -> str:
        return f"http://{HOST}:{self._port}"

    @property
    def admin_url(self) -> str | None:
        """The failpoint admin endpoint, when the target has one."""
        if self.target.failpoints is None:
            return None
        return f"{self.server_url}{self.target.failpoints}"

    async def start_server(self) -> Child:
        """Start the server (again), on the port it had, with the same store."""
        if self.server is not None and self.server.running:
            raise ClusterError("the server is already running")
        announce = self.target.port == "announce"
        port = self._port or (0 if announce else free_port(HOST))
        argv, env = self._command(port)
        if self.server is None:
            self.server = Child(
                "server", argv, self.run.log("server"), env=env,
                ready_url=(self.target.health if announce
                           else f"http://{HOST}:{port}{self.target.health}"),
                ready_line=announce, deadline=self.target.startup_deadline,
            )
            self.supervisor.children.append(self.server)
        else:
            await self.server.kill()  # reap an exit we did not cause (a crash) first
            self.server.argv, self.server.env = argv, env
        await self.server.start()
        self._port = self.server.port if announce else port
        return self.server

    async def stop_server(self, *, kill: bool = True, timeout: float = 10.0) -> int | None:
        """kill -9 (or SIGTERM and wait for a graceful exit); returns the exit code."""
        if self.server is None:
            return None
        if kill:
            await self.server.kill()
        else:
            await self.server.terminate(timeout)
        return self.server.proc.returncode if self.server.proc else None

    async def restart_server(self, *, kill: bool = True, downtime: float = 0.0) -> Child:
        """Stop the server, stay down for `downtime` seconds, start it on the same port."""
        await self.stop_server(kill=kill)
        if downtime > 0:
            await asyncio.sleep(downtime)
        return await self.start_server()

    async def health(self) -> dict[str, Any]:
        """The server's health answer (raises when it does not answer 200)."""
        assert self._http is not None
        async with self._http.get(f"{self.server_url}{self.target.health}",
                                  timeout=aiohttp.ClientTimeout(total=5)) as r:
            if r.status != 200:
                raise ClusterError(f"health check answered {r.status}")
            return await r.json(content_type=None)

    async def failpoints(self) -> dict[str, Any]:
        """GET the failpoint state: ``{"armed": {...}, "fired": [...]}``."""
        url = self._require_admin()
        assert self._http is not None
        async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=5)) as r:
            body = await r.json(content_type=None)
            if r.status != 200:
                raise ClusterError(f"GET {url}: {r.status} {body}")
            return body

    async def arm_failpoint(self, name: str, action: str, *, ms: int | None = None,
                            count: int | None = None) -> dict[str, Any]:
        """Arm (or, with ``off``, disarm) one failpoint in the server."""
        url = self._require_admin()
        assert self._http is not None
        payload: dict[str, Any] = {"name": name, "action": action}
        if ms is not None and action == "delay":
            payload["ms"] = ms
        if count:
            payload["count"] = count
        async with self._http.post(url, json=payload,
                                   timeout=aiohttp.ClientTimeout(total=5)) as r:
            body = await r.json(content_type=None)
            if r.status != 200:
                raise ClusterError(f"POST {url} {payload}: {r.status} {body.get('error', body)}")
            return body

    def _require_admin(self) -> str:
        if self.admin_url is None:
            raise ClusterError(f"target {self.target.name!r} has no failpoints")
        return self.admin_url

    # -- the store -------------------------------------------------------------------------

    @property
    def store_path(self) -> Path:
        return self.db

    async def store_ids(self) -> set[int]:
        """Every id in the store now (read from the file, not asked of the server)."""
        rows = await asyncio.to_thread(read_rows, self.target.store, self.db)
        return {row["id"] for row in rows}

    async def snapshot(self, path: Path | None = None) -> list[dict[str, Any]]:
        """Write store.jsonl (the checker's view of the store); returns the rows."""
        return await snapshot(self.target.store, self.db, path or self.run.store)

    # -- the proxies -------------------------------------------------------------------------

    async def _start_proxy_api(self) -> tuple[str, bool]:
        """The proxy API URL: a shared Toxiproxy (``TOXIPROXY_URL``) or an embedded one."""
        shared_url = os.environ.get("TOXIPROXY_URL")
        if shared_url:
            return shared_url.rstrip("/"), True
        url = await self._stack.enter_async_context(
            embedded_proxy(self.run.log("proxy"), supervisor=self.supervisor, seed=self.seed)
        )
        return url, False

    async def _create_proxies(self, api: tuple[str, bool]) -> None:
        url, shared = api
        control = await ProxyControl.connect(url, shared=shared, run_id=self.run_id)
        version = await control.version()
        self.proxy_label = (f"Toxiproxy {version} at {url}" if shared
                            else f"embedded (Toxiproxy API {version})")
        self.proxies = Proxies(control, ())
        infos = []
        for g in range(self.groups):
            infos.append(await control.create(f"group{g}", f"{HOST}:{self._port}",
                                              listen=f"{HOST}:0"))
        self.proxies = Proxies(control, tuple(infos))

    def group_of(self, index: int) -> int:
        """The client group of client number `index`."""
        return index % self.groups

    def client_url(self, index: int) -> str:
        """The URL client number `index` connects to: its group's proxy."""
        if self.proxies is None:
            raise ClusterError("the cluster is not started")
        info = self.proxies.groups[self.group_of(index)]
        return f"http://{HOST}:{info.listen_port}"

    def proxy_names(self, target: str) -> list[str]:
        """The proxy names a network fault's target (``all`` or ``group:K``) covers."""
        if self.proxies is None:
            raise ClusterError("the cluster is not started")
        if target == "all":
            return self.proxies.names
        group = int(target.split(":", 1)[1])
        if group >= self.groups:
            raise ClusterError(f"target {target!r}: this run has {self.groups} client group(s)")
        return [self.proxies.names[group]]

