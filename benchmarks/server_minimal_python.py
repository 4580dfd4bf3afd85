"""The floor for a Python server: the tutorial's exactly-once chat on bare python-socketio.

A benchmark row, not a target: it shows what python-socketio + aiohttp cost by
themselves, so the gap between the reference server and the Node peer can be
split into "the library" and "the reference server's own work". It has no
connection state recovery (python-socketio has none), no group commit, no
validation; the SQLite settings are the reference server's (WAL,
synchronous=NORMAL), with a synchronous insert like the Node peer's.

    .venv/bin/python benchmarks/server_minimal_python.py --port 0 --db /tmp/m.db
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sqlite3
from typing import Any

import socketio
from aiohttp import web


def build(db_path: str) -> web.Application:
    db = sqlite3.connect(db_path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "client_offset TEXT UNIQUE, content TEXT)"
    )
    sio = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    sio.attach(app)

    @sio.on("chat message")
    async def chat_message(sid: str, content: Any, client_offset: Any = None) -> None:
        try:
            cursor = db.execute(
                "INSERT INTO messages (content, client_offset) VALUES (?, ?)",
                (content, client_offset),
            )
        except sqlite3.IntegrityError:
            return None  # a retry of a stored message: ack it again
        await sio.emit("chat message", (content, cursor.lastrowid))
        return None

    @sio.on("connect")
    async def connect(sid: str, environ: dict[str, Any], auth: Any) -> None:
        offset = auth.get("serverOffset", 0) if isinstance(auth, dict) else 0
        offset = offset if isinstance(offset, int) and offset >= 0 else 0
        rows = db.execute("SELECT id, content FROM messages WHERE id > ? ORDER BY id", (offset,))
        for row_id, content in rows.fetchall():
            await sio.emit("chat message", (content, row_id), to=sid)

    async def healthz(request: web.Request) -> web.Response:
        (count,) = db.execute("SELECT count(*) FROM messages").fetchone()
        return web.json_response({"status": "ok", "messages": count, "pid": os.getpid()})

    app.router.add_get("/healthz", healthz)
    return app


async def serve(args: argparse.Namespace) -> None:
    runner = web.AppRunner(build(args.db), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    host, port = runner.addresses[0][:2]
    print(f"faultlab-server listening on http://{host}:{port}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--db", required=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(parser.parse_args()))
