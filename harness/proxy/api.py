"""Toxiproxy's HTTP API (every route in one place, as in its `api.go`), on aiohttp."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from faultlab import __version__
from faultlab.harness.proxy import schema
from faultlab.harness.proxy.collection import ProxyCollection
from faultlab.harness.proxy.errors import TOXIC_NOT_FOUND, ApiError

log = logging.getLogger("faultlab.proxy.api")

# The Toxiproxy release whose API this matches; the build part names us.
VERSION = f"2.12.0+faultlab.{__version__}"
COLLECTION: web.AppKey[ProxyCollection] = web.AppKey("collection", ProxyCollection)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(data, separators=(",", ":")), status=status,
        content_type="application/json",
    )


def _error(exc: ApiError) -> web.Response:
    # Go's http.Error: text/plain, the JSON body and a newline
    return web.Response(
        text=exc.body() + "\n", status=exc.status, content_type="text/plain", charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Browsers are refused (CSRF guard); errors become Toxiproxy's error body."""
    if request.headers.get("User-Agent", "").startswith("Mozilla/"):
        return web.Response(text="User agent not allowed\n", status=403)
    try:
        return await handler(request)
    except ApiError as exc:
        return _error(exc)
    except web.HTTPNotFound:
        return _error(ApiError("not found", 404))
    except web.HTTPMethodNotAllowed:
        return _error(ApiError("method not allowed", 405))


async def _body(request: web.Request) -> Any:
    return schema.decode(await request.read())


def _collection(request: web.Request) -> ProxyCollection:
    return request.app[COLLECTION]


async def reset(request: web.Request) -> web.Response:
    proxies = _collection(request)
    async with proxies.lock:
        await proxies.reset()
    return web.Response(status=204)


async def proxy_index(request: web.Request) -> web.Response:
    proxies = _collection(request).proxies
    return _json({name: proxies[name].to_json() for name in sorted(proxies)})


async def proxy_create(request: web.Request) -> web.Response:
    spec = schema.proxy_create(await _body(request))
    proxies = _collection(request)
    async with proxies.lock:
        proxy = await proxies.add(spec)
    return _json(proxy.to_json(), 201)


async def populate(request: web.Request) -> web.Response:
    specs = schema.populate(await _body(request))
    proxies = _collection(request)
    async with proxies.lock:
        done, error = await proxies.populate(specs)
    result: dict[str, Any] = {"proxies": [p.to_json() for p in done] or None}
    if error is None:
        return _json(result, 201)
    return _json({"error": error.message, "status": error.status, **result}, error.status)


async def proxy_show(request: web.Request) -> web.Response:
    return _json(_collection(request).get(request.match_info["proxy"]).to_json())


async def proxy_update(request: web.Request) -> web.Response:
    if request.method == "POST":
        log.debug("ProxyUpdate: HTTP method POST is deprecated. Use HTTP PATCH instead.")
    proxies = _collection(request)
    raw = await request.read()
    async with proxies.lock:
        proxy = proxies.get(request.match_info["proxy"])
        listen, upstream, enabled = schema.proxy_update(
            schema.decode(raw), proxy.listen, proxy.upstream, proxy.enabled
        )
        await proxy.update(listen, upstream, enabled)
    return _json(proxy.to_json())


async def proxy_delete(request: web.Request) -> web.Response:
    proxies = _collection(request)
    async with proxies.lock:
        proxies.remove(request.match_info["proxy"])
    return web.Response(status=204)


async def toxic_index(request: web.Request) -> web.Response:
    proxy = _collection(request).get(request.match_info["proxy"])
    return _json([t.to_json() for t in proxy.toxic_list()])


async def toxic_create(request: web.Request) -> web.Response:
    proxies = _collection(request)
    raw = await request.read()
    async with proxies.lock:
        proxy = proxies.get(request.match_info["proxy"])
        entry = schema.toxic_create(
            schema.decode(raw), lambda name: proxy.find_toxic(name) is not None
        )
        proxy.add_toxic(entry)
    return _json(entry.to_json())


def _toxic(request: web.Request) -> tuple[Any, Any]:
    proxy = _collection(request).get(request.match_info["proxy"])
    entry = proxy.find_toxic(request.match_info["toxic"])
    if entry is None:
        raise TOXIC_NOT_FOUND
    return proxy, entry


async def toxic_show(request: web.Request) -> web.Response:
    _, entry = _toxic(request)
    return _json(entry.to_json())


async def toxic_update(request: web.Request) -> web.Response:
    if request.method == "POST":
        log.debug("ToxicUpdate: HTTP method POST is deprecated. Use HTTP PATCH instead.")
    proxies = _collection(request)
    raw = await request.read()
    async with proxies.lock:
        proxy, entry = _toxic(request)
        toxic, toxicity = schema.toxic_update(schema.decode(raw), entry)
        await proxy.update_toxic(entry, toxic, toxicity)
    return _json(entry.to_json())


async def toxic_delete(request: web.Request) -> web.Response:
    proxies = _collection(request)
    async with proxies.lock:
        proxy, entry = _toxic(request)
        await proxy.remove_toxic(entry)
    return web.Response(status=204)


async def version(request: web.Request) -> web.Response:
    return web.Response(
        text=json.dumps({"version": VERSION}) + "\n",
        content_type="application/json", charset="utf-8",
    )


def make_app(proxies: ProxyCollection) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=1024 * 1024)
    app[COLLECTION] = proxies
    one = "/proxies/{proxy}"
    toxics, toxic = f"{one}/toxics", f"{one}/toxics/{{toxic}}"
    app.router.add_post("/reset", reset)
    app.router.add_get("/proxies", proxy_index, allow_head=False)
    app.router.add_post("/proxies", proxy_create)
    app.router.add_post("/populate", populate)
    app.router.add_get(one, proxy_show, allow_head=False)
    app.router.add_post(one, proxy_update)
    app.router.add_patch(one, proxy_update)
    app.router.add_delete(one, proxy_delete)
    app.router.add_get(toxics, toxic_index, allow_head=False)
    app.router.add_post(toxics, toxic_create)
    app.router.add_get(toxic, toxic_show, allow_head=False)
    app.router.add_post(toxic, toxic_update)
    app.router.add_patch(toxic, toxic_update)
    app.router.add_delete(toxic, toxic_delete)
    app.router.add_get("/version", version, allow_head=False)
    return app
