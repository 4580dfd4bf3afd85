"""The scenarios' event loop, as a user's pytest session meets it through `pytest11`.

A scenario (a test using the `faultlab` fixture) runs on `--faultlab-loop`, uvloop by
default; every other async test of the same session keeps asyncio's own loop, so
installing faultlab does not change a project's unrelated tests.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

TESTS = '''
import asyncio

def kind():
    return type(asyncio.get_running_loop()).__module__.split(".")[0]

async def test_scenario(faultlab):
    print("scenario loop:", kind())

async def test_unrelated():
    print("unrelated loop:", kind())
'''


def _session(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_loops.py").write_text(TESTS)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "-o", "asyncio_mode=auto", "test_loops.py", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.parametrize(("args", "scenario"), [((), "uvloop"),
                                                 (("--faultlab-loop", "asyncio"), "asyncio"),
                                                 (("--faultlab-loop", "uvloop"), "uvloop")])
def test_scenarios_run_on_the_chosen_loop_and_other_tests_on_asyncio(
        tmp_path: Path, args: tuple[str, ...], scenario: str) -> None:
    proc = _session(tmp_path, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"scenario loop: {scenario}" in proc.stdout
    assert "unrelated loop: asyncio" in proc.stdout


def test_an_unknown_loop_is_a_usage_error(tmp_path: Path) -> None:
    proc = _session(tmp_path, "--faultlab-loop", "trio")
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert "--faultlab-loop: invalid choice: 'trio'" in proc.stderr
