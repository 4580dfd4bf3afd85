"""The gate as a CI user meets it: a pytest run in a fresh directory, through the
`pytest11` entry point, with a real cluster behind one tiny scenario.

One session holds a scenario that passes and one whose expectation cannot hold (loss
predicted at exactly-once without faults): pytest must exit non-zero, the JUnit XML
must name the failure, params.json must record the expectation and the outcome, and
the step summary must be written for GitHub Actions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson

SCENARIO = '''
import pytest

TINY = {"clients": 2, "messages": 2}

async def test_clean(faultlab):
    outcome = await faultlab.run(level="exactly-once", **TINY)
    assert outcome.count("lost") == 0

async def test_blind(faultlab):
    await faultlab.run(level="exactly-once", expect=["lost"], **TINY)
'''
PYPROJECT = '''
[tool.faultlab.thresholds]
max_lost = 0
p99_stable_latency = 30
'''


def test_a_failed_expectation_fails_the_session_with_junit_and_summary(tmp_path: Path) -> None:
    (tmp_path / "test_tiny.py").write_text(SCENARIO)
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    summary = tmp_path / "step-summary.md"
    report = tmp_path / "report"
    junit = tmp_path / "junit.xml"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-o", "asyncio_mode=auto", "--faultlab-seed", "7",
         "--faultlab-report", str(report), f"--junitxml={junit}", "test_tiny.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    assert "expected lost but the run came out clean of it: the harness went blind" in out
    assert "replay: pytest test_tiny.py::test_blind --faultlab-seed 7" in out

    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases["test_clean"].find("failure") is None
    assert cases["test_blind"].find("failure") is not None

    params = {p.parent.name: orjson.loads(p.read_bytes())
              for p in (report / "runs").glob("*/params.json")}
    blind = next(v for k, v in params.items() if k.endswith("test_blind"))
    clean = next(v for k, v in params.items() if k.endswith("test_clean"))
    assert (blind["expected"], blind["outcome"]) == (["lost"], "fail")
    assert (clean["expected"], clean["outcome"]) == ([], "pass")
    assert blind["thresholds"]["p99_stable_latency"] == 30
    assert (report / "index.html").is_file()
    assert summary.is_file() and summary.read_text().strip()
