"""The run directory (DESIGN §3.6): everything one run leaves behind, in one folder.

The report and `faultlab check` read run directories only, so this module fixes the
names: `params.json` (what was asked, enough to replay it), `history.jsonl`,
`store.jsonl`, `verdict.json`, `violations.jsonl` and `logs/`.
"""

from __future__ import annotations

import platform
import re
import shlex
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from faultlab.harness.history import HISTORY_FORMAT


@dataclass(frozen=True)
class RunDir:
    """Paths inside one run directory."""

    path: Path

    @property
    def params(self) -> Path:
        return self.path / "params.json"

    @property
    def history(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def store(self) -> Path:
        return self.path / "store.jsonl"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    @property
    def db(self) -> Path:
        """The scenario's own store file (a SQLite target's database)."""
        return self.path / "store.db"


def create_run_dir(out: Path | None = None, name: str = "run") -> RunDir:
    """A fresh run directory: `out` itself when given (must be empty), else a new one
    under it or under the system temporary folder, named after the run and the time."""
    slug = re.sub(r"[^\w.\-]+", "-", name).strip("-")[:60] or "run"
    if out is not None and out.exists() and not out.is_dir():
        raise FileExistsError(f"{out}: exists and is not a directory")
    if out is not None and (not out.exists() or not any(out.iterdir())):
        path = out
        path.mkdir(parents=True, exist_ok=True)
    else:
        parent = out if out is not None else Path(tempfile.gettempdir()) / "faultlab-runs"
        parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = Path(tempfile.mkdtemp(prefix=f"{slug}-{stamp}-", dir=parent))
    run = RunDir(path.resolve())
    run.logs.mkdir(exist_ok=True)
    return run


def versions() -> dict[str, str]:
    """The versions a report needs to say what was tested, and on what."""
    out = {"python": platform.python_version(),
           "machine": f"{platform.machine()} {platform.system()}"}
    for dist in ("faultlab", "python-socketio", "python-engineio", "aiohttp"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def replay_command(argv: Sequence[str]) -> str:
    """The shell command that runs the same thing again."""
    return shlex.join(argv)


def write_params(run: RunDir, params: dict[str, Any]) -> dict[str, Any]:
    """Write params.json with the fields every reader relies on filled in."""
    full = {
        "scenario": None, "expected": None, "thresholds": {}, "versions": versions(),
        "history_format": HISTORY_FORMAT, **params,
    }
    run.params.write_bytes(orjson.dumps(full, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    return full


def update_params(run: RunDir, **fields: Any) -> None:
    """Add what is only known once the run is under way (e.g. the proxy's version)."""
    params = orjson.loads(run.params.read_bytes())
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(params.get(key), dict):
            params[key] = {**params[key], **value}
        else:
            params[key] = value
    run.params.write_bytes(orjson.dumps(params, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))


def faultlab_replay(options: dict[str, Any]) -> str:
    """`faultlab run ...` with these options, as a replay command for params.json."""
    argv = ["faultlab", "run"]
    for key, value in options.items():
        if value is None or value is False:
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        else:
            if not isinstance(value, str):
                value = orjson.dumps(value).decode()
            argv += [flag, value]
    return replay_command(argv)

