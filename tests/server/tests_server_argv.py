"""The command line of a test server: loopback, a free port, short timers."""

from __future__ import annotations

from pathlib import Path

from faultlab.harness.processes import faultlab_argv

FAST = ["--ping-interval", "2", "--ping-timeout", "2", "--busy-timeout", "300"]


def server_argv(db: Path, *args: str) -> list[str]:
    return faultlab_argv(
        "server", "--host", "127.0.0.1", "--port", "0", "--db", str(db), *FAST, *args
    )
