"""`faultlab proxy` as a process: ready line, --config, clean exit on signals."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from proxytools import connect, round_trip, start_proxy_server, stop_proxy_server


def test_ready_line_and_sigterm_release_every_port(tmp_path: Path, echo) -> None:
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([
        {"name": "fromfile", "upstream": echo.address, "listen": "127.0.0.1:0"},
        {"name": "off", "upstream": echo.address, "enabled": False},
    ]))
    server = start_proxy_server("--config", str(config))
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
    proxies = server.call("GET", "/proxies").json()
    assert set(proxies) == {"fromfile", "off"}
    assert proxies["off"]["enabled"] is False
    listen = proxies["fromfile"]["listen"]
    client = connect(listen)
    round_trip(client)
    assert stop_proxy_server(server) == 0
    assert client.recv(10) == b""  # the open connection was closed
    client.close()
    for address in (server.url.removeprefix("http://"), listen):
        with pytest.raises(ConnectionRefusedError):
            connect(address)


def test_sigint_exits_cleanly() -> None:
    server = start_proxy_server()
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=10) == 0
    server.proc.communicate()


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "faultlab", "proxy", *args],
                          capture_output=True, text=True, timeout=30)


def test_bad_config_fails_with_a_precise_message(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('[{"upstream": "127.0.0.1:1"}]')
    done = _run("--port", "0", "--config", str(config))
    assert done.returncode == 2
    assert "missing required field: name at proxy 1" in done.stderr


def test_taken_api_port_fails_with_a_precise_message() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = _run("--port", str(taken.getsockname()[1]))
    assert done.returncode == 1
    assert "cannot listen on 127.0.0.1:" in done.stderr
