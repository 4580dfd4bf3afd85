"""Both event loops the server offers serve the chat: broadcast, ack, SIGTERM exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from chat_client import ChatClient, rows


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_each_loop_broadcasts_acks_and_stops_gracefully(start_server, db, loop):
    server = await start_server("--loop", loop)
    sender, watcher = ChatClient(server.url), ChatClient(server.url)
    await sender.connect()
    await watcher.connect()
    for i in range(3):
        assert await sender.send(f"m{i}", f"c-{i}") is None
    await watcher.wait_count(3)
    assert watcher.received == [("m0", 1), ("m1", 2), ("m2", 3)]
    server.send_signal(15)
    assert await server.wait_exit(10) == 0
    assert rows(db) == [(1, "c-0", "m0"), (2, "c-1", "m1"), (3, "c-2", "m2")]
    assert f"loop={loop} " in server.log_path.read_text()
    await sender.drop()
    await watcher.drop()


def test_an_unknown_loop_is_refused_in_one_line(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "faultlab", "server", "--loop", "trio", "--db", "x.db"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "'trio' is not one of" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
