"""Reading run directories (DESIGN §3.6): the report's only input.

Finds run directories under the paths given and loads their small files
(params, verdict, store snapshot); the history is streamed separately.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from faultlab.reports.kinds import VIOLATION_KINDS

REQUIRED = ("params.json", "history.jsonl", "store.jsonl", "verdict.json")
SUPPORTED_HISTORY_FORMATS = {1}


class RunDirError(Exception):
    """A run directory that cannot be reported on; the message says exactly why."""


@dataclass
class RunDir:
    """The parsed small files of one run directory."""

    path: Path
    params: dict[str, Any]
    verdict: dict[str, Any]
    store: list[dict[str, Any]]

    @property
    def history(self) -> Path:
        return self.path / "history.jsonl"

    def counts(self) -> dict[str, int]:
        """Violation counts per kind, as the verdict states them."""
        vs = self.verdict.get("violations", {})
        return {k: int(vs.get(k, {}).get("count", 0)) for k in VIOLATION_KINDS}


def discover(paths: Iterable[Path]) -> list[Path]:
    """Expand each path to the run directories at or below it (any with params.json)."""
    found: list[Path] = []
    for path in paths:
        if not path.is_dir():
            raise RunDirError(f"{path}: not a directory")
        if (path / "params.json").is_file():
            found.append(path)
            continue
        below = sorted(p.parent for p in path.rglob("params.json"))
        if not below:
            raise RunDirError(f"{path}: no run directory here (no params.json at or below it)")
        found.extend(below)
    return list(dict.fromkeys(found))


def _json(path: Path) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise RunDirError(f"{path.parent}: {path.name} is missing") from None
    except orjson.JSONDecodeError as exc:
        raise RunDirError(f"{path}: not valid JSON ({exc})") from None


def _store(path: Path) -> list[dict[str, Any]]:
    rows = []
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        raise RunDirError(f"{path.parent}: store.jsonl is missing") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise RunDirError(f"{path}:{n}: not valid JSON ({exc})") from None
        if not isinstance(row, dict) or not isinstance(row.get("id"), int):
            raise RunDirError(f"{path}:{n}: a store row needs an integer 'id'")
        rows.append(row)
    return rows


def load(path: Path) -> RunDir:
    """Load one run directory, or raise RunDirError naming the file and the problem."""
    for name in REQUIRED:
        if not (path / name).is_file():
            raise RunDirError(f"{path}: {name} is missing")
    params = _json(path / "params.json")
    if not isinstance(params, dict):
        raise RunDirError(f"{path / 'params.json'}: expected a JSON object")
    fmt = params.get("history_format", 1)
    if fmt not in SUPPORTED_HISTORY_FORMATS:
        raise RunDirError(f"{path / 'params.json'}: history_format {fmt!r} is not supported "
                          f"(this report reads {sorted(SUPPORTED_HISTORY_FORMATS)})")
    verdict = _json(path / "verdict.json")
    if not isinstance(verdict, dict) or not isinstance(verdict.get("violations"), dict):
        raise RunDirError(f"{path / 'verdict.json'}: expected an object with 'violations'")
    return RunDir(path=path, params=params, verdict=verdict, store=_store(path / "store.jsonl"))
