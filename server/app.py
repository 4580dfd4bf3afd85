"""Wiring: aiohttp + the recovering Socket.IO server + store + pipeline, and the HTTP routes.

Routes: `/socket.io/` (websocket and polling), `GET /healthz`, `GET|POST
/admin/failpoints` (loopback peers only), `GET /` (the chat page) and
`GET /socket.io.min.js` (the official browser client, from npm).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from aiohttp import web

from faultlab.server.config import ServerConfig
from faultlab.server.delivery import ChatDelivery
from faultlab.server.emitter import EVENT, LIVE, Emitter
from faultlab.server.failpoints import BadFailpoint, Failpoints
from faultlab.server.mutations import Mutation
from faultlab.server.pipeline import Pipeline
from faultlab.server.receive import Shortcut
from faultlab.server.recovery import DurableSessions, EmitLog, MemorySessions, RecoveringServer
from faultlab.server.store import Store
from faultlab.server.transport import use_plain_websockets

log = logging.getLogger("faultlab.server")

STATIC = Path(__file__).parent / "static"
CLIENT_JS_ENV = "FAULTLAB_SOCKETIO_CLIENT_JS"
CLIENT_JS = Path("node_modules/socket.io-client/dist/socket.io.min.js")


def find_client_js() -> Path | None:
    """The official browser client: env override, else node_modules above this package or cwd."""
    override = os.environ.get(CLIENT_JS_ENV)
    if override:
        return Path(override) if Path(override).is_file() else None
    for base in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (base, *base.parents):
            candidate = folder / CLIENT_JS
            if candidate.is_file():
                return candidate
    return None


def _loopback(request: web.Request) -> bool:
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


class ChatServer:
    """One reference chat server: start it, serve, shut it down gracefully."""

    def __init__(self, config: ServerConfig, mutation: Mutation | None = None) -> None:
        self.config = config
        self.mutation = mutation or Mutation()
        self.failpoints = Failpoints()
        if config.failpoints:
            self.failpoints.arm_spec(config.failpoints)
        self.store = Store(
            config.db,
            unique_offsets=config.exactly_once and not self.mutation.is_("no_dedupe"),
            busy_timeout_ms=config.busy_timeout_ms,
            synchronous=config.synchronous,
            sessions=config.recovery == "durable",
        )
        self.emit_log = EmitLog(config.recovery_window) if config.recovery == "memory" else None
        sessions: MemorySessions | DurableSessions | None = None
        if config.recovery == "memory":
            sessions = MemorySessions()
        elif config.recovery == "durable":
            sessions = DurableSessions(self.store)
        self.sessions = sessions
        self.sio = RecoveringServer(
            sessions=sessions,
            window=config.recovery_window,
            offset_known=self._offset_known,
            unrestored_rooms=frozenset({LIVE}),
            async_mode="aiohttp",
            # python-engineio advertises int(interval + grace) seconds: a grace that
            # rounds a sub-second interval up keeps clients from being told 0 ms
            ping_interval=(
                config.ping_interval,
                max(0.0, math.ceil(config.ping_interval) - config.ping_interval + 1e-9),
            ),
            ping_timeout=config.ping_timeout,
            cors_allowed_origins="*",
            max_http_buffer_size=max(1_000_000, config.max_content * 8),
        )
        self.emitter = Emitter(self.sio, csr=config.csr, emit_log=self.emit_log)
        self.pipeline = Pipeline(
            self.store, self.emitter, self.failpoints, self.mutation, batch_max=config.batch_max
        )
        self.delivery = ChatDelivery(
            config, self.sio, self.store, self.pipeline, self.failpoints, self.mutation
        )
        self.delivery.register()
        use_plain_websockets(self.sio.eio, Shortcut(self.sio, {EVENT: self.delivery.take_now}))
        self.app = web.Application()
        self.sio.attach(self.app)
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/admin/failpoints", self.get_failpoints)
        self.app.router.add_post("/admin/failpoints", self.post_failpoints)
        self.app.router.add_get("/", self.index)
        self.app.router.add_get("/socket.io.min.js", self.client_js)
        if STATIC.is_dir():
            self.app.router.add_static("/static/", STATIC)
        self.runner: web.AppRunner | None = None
        self.site: web.TCPSite | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self.url = ""

    async def _offset_known(self, offset: str) -> bool:
        if self.emit_log is not None:
            self.emit_log.expire(time.time())
            return self.emit_log.known(offset, time.time())
        if not offset.isdigit() or len(offset) > 18:
            return False
        return int(offset) <= self.pipeline.last_id

    async def start(self) -> str:
        """Open the store, start the pipeline, listen; returns the URL served."""
        await self.store.open()
        if isinstance(self.sessions, DurableSessions):
            await self.sessions.adopt_orphans(time.time())
        await self.pipeline.start()
        if self.sessions is not None:
            every = max(0.5, min(60.0, self.config.recovery_window / 2))
            self._tasks.append(asyncio.create_task(self.sio.expire_loop(every)))
        self.runner = web.AppRunner(
            self.app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, self.config.host, self.config.port)
        await self.site.start()
        host, port = self.runner.addresses[0][:2]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        return self.url

    async def shutdown(self, deadline: float = 10.0) -> None:
        """SIGTERM: stop accepting, finish committed inserts and their acks, persist sessions."""
        log.info("shutting down")
        if self.site is not None:
            await self.site.stop()
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while (self.delivery.in_flight or not self.pipeline.idle) and loop.time() < end:
            await asyncio.sleep(0.01)
        self.sio.shutting_down = True
        for eio_sid, sock in list(self.sio.eio.sockets.items()):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sock.close(wait=True), max(0.1, end - loop.time()))
            log.debug("closed %s", eio_sid)
        for task in self._tasks:
            task.cancel()
        await self.pipeline.stop()
        with contextlib.suppress(Exception):
            await self.sio.shutdown()
        if self.runner is not None:
            await self.runner.cleanup()
        await self.store.close()
        log.info("stopped")

    # Routes.

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "status": "ok",
                "level": self.config.delivery,
                "recovery": self.config.recovery,
                "messages": await self.store.count(),
                "pid": os.getpid(),
            }
        )

    async def get_failpoints(self, request: web.Request) -> web.Response:
        if not _loopback(request):
            return web.json_response({"error": "admin is loopback-only"}, status=403)
        return web.json_response(self.failpoints.state())

    async def post_failpoints(self, request: web.Request) -> web.Response:
        if not _loopback(request):
            return web.json_response({"error": "admin is loopback-only"}, status=403)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "body must be JSON"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        unknown = set(body) - {"name", "action", "ms", "count"}
        if unknown:
            return web.json_response(
                {"error": f"unknown field(s): {', '.join(sorted(unknown))}"}, status=400
            )
        name, action = body.get("name"), body.get("action")
        if not isinstance(name, str) or not isinstance(action, str):
            return web.json_response(
                {"error": "'name' and 'action' are required strings"}, status=400
            )
        try:
            self.failpoints.arm(name, action, body.get("ms"), body.get("count"))
        except BadFailpoint as exc:
            return web.json_response({"error": str(exc)}, status=400)
        log.info("failpoint %s armed: %s", name, body)
        return web.json_response(self.failpoints.state())

    async def index(self, request: web.Request) -> web.StreamResponse:
        page = STATIC / "index.html"
        if not page.is_file():
            return web.Response(
                status=404, text="the chat page (server/static/index.html) is missing"
            )
        return web.FileResponse(page)

    async def client_js(self, request: web.Request) -> web.StreamResponse:
        path = find_client_js()
        if path is None:
            return web.Response(
                status=404,
                text=f"socket.io-client is not installed: run `npm ci` at the repository root "
                f"or set {CLIENT_JS_ENV}",
            )
        return web.FileResponse(path, headers={"Content-Type": "application/javascript"})


def quiet_libraries() -> None:
    """python-socketio logs every packet at INFO; keep its noise at WARNING."""
    for name in ("socketio", "engineio", "socketio.server", "engineio.server", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
