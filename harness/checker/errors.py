"""Why a run directory could not be judged: the file and, when known, the line."""

from __future__ import annotations

from pathlib import Path


class RunDirError(Exception):
    """A run directory is unreadable (exit 2): names the file and line that broke it."""

    def __init__(self, path: Path, line: int | None, message: str) -> None:
        self.path = path
        self.line = line
        self.message = message
        where = f"{path}" if line is None else f"{path} line {line}"
        super().__init__(f"{where}: {message}")
