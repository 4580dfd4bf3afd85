"""The chat page in headless Chromium: send, see, reload, see the history, recover.

The page is the tutorial's chat with the exactly-once client and the strict
receive policy; the browser script (tests/server/js/browser_check.mjs) drives it
with playwright-core and reports what the page showed; this test judges it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from faultlab.harness.processes import Child

pytestmark = [pytest.mark.browser, pytest.mark.node]

SCRIPT = Path(__file__).parent / "js" / "browser_check.mjs"
REPO = Path(__file__).resolve().parents[2]
HOSTILE = '<img src=x onerror="window.__pwned=1"><b>bold</b>'


async def run_browser_check(url: str) -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is not on PATH"
    proc = await asyncio.create_subprocess_exec(
        node,
        str(SCRIPT),
        url,
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = out.decode().strip().splitlines()
    assert lines, f"the browser script printed nothing (exit {proc.returncode}): {err.decode()}"
    report = json.loads(lines[-1])
    assert report["ok"], report.get("error")
    return report


async def test_chat_page_sends_reloads_and_recovers(start_server: Any) -> None:
    if not Path("/usr/bin/chromium").exists() and not shutil.which("chromium"):
        pytest.fail("Chromium is missing: scripts/setup installs Debian's chromium")
    server: Child = await start_server("--recovery", "memory")
    report = await run_browser_check(server.url or "")
    steps = report["steps"]

    sent = steps["send"]["listed"]
    assert [item["text"] for item in sent] == ["hello from the page", HOSTILE]
    assert [item["offset"] for item in sent] == [1, 2]
    assert all(item["children"] == 0 for item in sent), "content must be text, never HTML"
    assert steps["send"]["pwned"] is False

    assert steps["reload"]["listed"] == sent, "a reload shows the whole history, once"

    recover = steps["recover"]
    assert recover["offlineStatus"].startswith("disconnected")
    assert recover["recovered"] is True and recover["status"] == "recovered"
    texts = [item["text"] for item in recover["listed"]]
    assert texts[:2] == ["hello from the page", HOSTILE]
    assert sorted(texts[2:]) == sorted(
        ["missed 1", "missed 2", "missed 3", "typed while offline", "after"]
    )
    assert texts[-1] == "after"
    offsets = [item["offset"] for item in recover["listed"]]
    assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets), offsets
    assert report["consoleErrors"] == []
