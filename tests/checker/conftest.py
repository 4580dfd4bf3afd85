"""Fixtures for the checker's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from runbuilder import Run


@pytest.fixture
def run(tmp_path: Path) -> Callable[..., Run]:
    """A fresh hand-written run in its own directory."""
    made = 0

    def make(**kwargs: object) -> Run:
        nonlocal made
        made += 1
        return Run(tmp_path / f"run{made}", **kwargs)  # type: ignore[arg-type]

    return make
