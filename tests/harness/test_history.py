"""The history writer: format 1 lines, periodic flushes, a readable prefix after a crash."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import orjson

from faultlab.harness.history import History


async def test_lines_are_format_1_and_in_time_order(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    async with History(path) as history:
        history.record("harness", "run_start", store_max_id=0)
        history.record("c1", "send", msg="m1", content="c1-1", client_offset="s-1")
        history.record("c1", "ack", msg="m1")
    lines = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert [line["op"] for line in lines] == ["run_start", "send", "ack"]
    assert lines[1] == {"t": lines[1]["t"], "actor": "c1", "op": "send", "msg": "m1",
                        "content": "c1-1", "client_offset": "s-1"}
    assert [line["t"] for line in lines] == sorted(line["t"] for line in lines)


async def test_flushed_while_running_without_close(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    async with History(path, flush_interval=0.02) as history:
        history.record("c1", "connect", sid="a", recovered=False)
        deadline = time.monotonic() + 2
        while not path.read_bytes() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert orjson.loads(path.read_bytes().splitlines()[0])["op"] == "connect"


def test_a_killed_harness_leaves_a_readable_prefix(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from pathlib import Path
        from faultlab.harness.history import History

        async def main():
            async with History(Path({str(path)!r}), flush_interval=0.01) as h:
                for i in range(2000):
                    h.record("c1", "recv", content=f"x{{i}}", server_offset=i, csr_offset=None)
                await asyncio.sleep(0.1)
                h.record("c1", "recv", content="never-flushed", server_offset=-1, csr_offset=None)
                os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], timeout=30)
    assert proc.returncode == -9
    lines = path.read_bytes().splitlines()
    assert len(lines) == 2000
    assert orjson.loads(lines[-1])["content"] == "x1999"
