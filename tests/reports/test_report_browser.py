"""The page in a real headless Chromium: no console error, no request, matrix and timeline drawn."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.node,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]


def test_the_report_opens_cleanly_and_shows_matrix_and_timeline(rendered, tmp_path):
    index = rendered / "index.html"
    shot = tmp_path / "report.png"
    done = subprocess.run(
        ["node", str(HERE / "browser_check.js"), str(index), str(shot), str(tmp_path / "profile")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "CHROMIUM": CHROMIUM, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["errors"] == []
    assert facts["requests"] == [], "the page must need no network"
    assert facts["verdict"] == "fail"
    assert sorted(facts["matrixStates"]) == ["clean", "expected", "unexpected"]
    assert facts["matrixBox"][0] > 600 and facts["matrixBox"][1] > 100
    assert facts["timelines"] == 3
    assert facts["timelineBox"][0] > 600 and facts["timelineBox"][1] > 250
    assert "partition" in facts["timelineText"] and "f1" in facts["timelineText"]
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
