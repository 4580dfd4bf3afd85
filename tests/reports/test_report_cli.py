"""`faultlab report` as a user runs it: a real process, real files, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FAULTLAB = Path(sys.executable).parent / "faultlab"


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(FAULTLAB), "report", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_report_writes_three_files_and_appends_the_summary(weak_run, tmp_path):
    step_summary = tmp_path / "step.md"
    step_summary.write_text("before\n")
    done = _run(weak_run, "-o", tmp_path / "out", "--summary", step_summary,
                cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["faultlab delivery report: ✅ PASS",
                                        f"report: {tmp_path / 'out' / 'index.html'}"]
    for name in ("index.html", "results.json", "summary.md"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert step_summary.read_text() == "before\n" + summary


def test_a_folder_without_runs_is_a_usage_error(tmp_path):
    (tmp_path / "nothing").mkdir()
    done = _run(tmp_path / "nothing", cwd=tmp_path)
    assert done.returncode == 2
    assert "no run directory here (no params.json at or below it)" in done.stderr
    assert not (tmp_path / "faultlab-report").exists()


def test_a_missing_path_is_a_usage_error(tmp_path):
    done = _run(tmp_path / "absent", cwd=tmp_path)
    assert done.returncode == 2
    assert "does not exist" in done.stderr
