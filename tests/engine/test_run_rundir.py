"""Run directories: fresh folders, params.json with the fields readers rely on."""

from __future__ import annotations

import shlex
from pathlib import Path

import orjson
import pytest

from faultlab.harness.rundir import create_run_dir, faultlab_replay, write_params


def test_out_dir_is_used_when_empty_else_a_new_one_below_it(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path / "out", "s1")
    assert first.path == (tmp_path / "out").resolve()
    assert first.logs.is_dir()
    second = create_run_dir(tmp_path / "out", "my scenario/x")
    assert second.path.parent == first.path
    assert second.path.name.startswith("my-scenario-x-")
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a directory"):
        create_run_dir(tmp_path / "file")


def test_params_have_format_and_versions(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path / "r")
    write_params(run, {"level": "exactly-once", "seed": 3, "schedule": []})
    params = orjson.loads(run.params.read_bytes())
    assert params["history_format"] == 1
    assert params["level"] == "exactly-once"
    assert params["expected"] is None
    assert params["versions"]["python-socketio"] == "5.18.1"


def test_replay_command_quotes_json() -> None:
    cmd = faultlab_replay({"level": "buffered", "seed": 4, "faults": [{"at": 1, "kind": "kill"}],
                           "verbose": False, "allow": True, "out": None})
    argv = shlex.split(cmd)
    assert argv[:2] == ["faultlab", "run"]
    assert argv[argv.index("--faults") + 1] == '[{"at":1,"kind":"kill"}]'
    assert "--allow" in argv and "--verbose" not in argv and "--out" not in argv
