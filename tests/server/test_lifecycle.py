"""Start, serve, stop: the ready line, SIGTERM, kill -9 after an ack, bad command lines."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from chat_client import ChatClient, rows


async def test_sigterm_finishes_in_flight_inserts_and_exits_zero(start_server, db):
    server = await start_server("--failpoints", "before_broadcast=delay(300)*1")
    client = ChatClient(server.url)
    await client.connect()
    acks = asyncio.create_task(client.send("m", "c-1", timeout=5))
    await asyncio.sleep(0.1)  # the insert is now held in the pipeline
    server.send_signal(15)
    assert await acks is None  # acked before the server went away
    assert await server.wait_exit(10) == 0
    assert rows(db) == [(1, "c-1", "m")]
    await client.drop()


async def test_an_acked_row_survives_kill_9(start_server, db):
    server = await start_server()
    client = ChatClient(server.url)
    await client.connect()
    assert await client.send("m", "c-1") is None
    await server.kill()
    assert rows(db) == [(1, "c-1", "m")]
    await server.restart()
    async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz") as r:
        assert (await r.json())["messages"] == 1
    await client.drop()


async def test_pages_and_client_library_routes(start_server):
    server = await start_server()
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{server.url}/socket.io.min.js") as r:
            body = await r.text()
            assert r.status == 200 and "io" in body and len(body) > 10_000
        async with http.get(f"{server.url}/") as r:
            assert r.status in (200, 404)
            if r.status == 404:
                assert "chat page" in await r.text()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "faultlab", "server", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--delivery", "twice"], "'twice' is not one of"),
        (["--port", "70000"], "70000"),
        (["--ping-interval", "abc"], "abc"),
        (["--failpoints", "after_commit=boom"], "bad failpoint entry"),
        (["--bogus"], "No such option"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args: list[str], words: str, tmp_path: Path) -> None:
    done = _cli("--db", str(tmp_path / "x.db"), *args)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert words in done.stderr


def test_a_taken_port_is_one_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _cli("--db", str(tmp_path / "x.db"), "--port", str(taken.getsockname()[1]))
    assert done.returncode == 2 and "cannot listen" in done.stderr


def test_a_store_of_another_level_is_refused(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "x.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE messages (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "client_offset TEXT, content TEXT)"
        )
    done = _cli("--db", str(db), "--delivery", "exactly-once")
    assert done.returncode == 2 and "UNIQUE client_offset" in done.stderr
