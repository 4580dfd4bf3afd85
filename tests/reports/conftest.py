"""Run directories for the report tests, made once per session by the synthetic generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultlab.reports import render
from faultlab.reports.synthetic import RunSpec, every_kind, write_run


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_run(RunSpec(name="clean", seed=3), tmp_path_factory.mktemp("runs") / "clean")


@pytest.fixture(scope="session")
def violations_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every violation kind, none of them expected: the red cell."""
    spec = RunSpec(name="broken", level="at-least-once", seed=5, messages=80,
                   violations=every_kind(2), expected=[])
    return write_run(spec, tmp_path_factory.mktemp("runs") / "broken")


@pytest.fixture(scope="session")
def weak_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weak level losing messages under kill -9, as its scenario expects."""
    spec = RunSpec(name="weak", level="at-most-once", fault_kind="kill9", seed=7,
                   violations={"lost": 3}, expected=["lost"],
                   thresholds={"max_duplicates": 0})
    return write_run(spec, tmp_path_factory.mktemp("runs") / "weak")


@pytest.fixture(scope="session")
def rendered(clean_run: Path, violations_run: Path, weak_run: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One full render of the three runs, shared by the tests that read the written files."""
    out = tmp_path_factory.mktemp("report")
    render([clean_run, violations_run, weak_run], out)
    return out
