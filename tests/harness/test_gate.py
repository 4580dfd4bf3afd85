"""The gate judges expectations and thresholds; each rule shown failing and passing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from faultlab.harness.gate import (
    DEFAULT_THRESHOLDS,
    KINDS,
    Expectation,
    GateConfigError,
    judge,
    merge_thresholds,
    project_thresholds,
)


def verdict(valid: Any = True, metrics: dict[str, Any] | None = None, **found: int) -> dict:
    return {
        "valid": valid,
        "violations": {k: {"count": found.get(k, 0), "messages": [], "more": 0} for k in KINDS},
        "metrics": metrics or {},
    }


CLEAN = Expectation.of()
T = merge_thresholds()


def test_clean_run_with_clean_expectation_passes() -> None:
    assert judge(verdict(), CLEAN, T).passed


def test_any_unexpected_kind_fails_and_is_named() -> None:
    j = judge(verdict(valid=False, lost_acked=2), CLEAN, T)
    assert not j.passed
    assert "lost_acked: 2 message(s)" in j.problems
    assert "max_lost: 2 > 0" in j.crossed


def test_a_predicted_loss_that_did_not_happen_fails_as_blindness() -> None:
    j = judge(verdict(), Expectation.of(must=["lost"]), T)
    assert not j.passed and "went blind" in j.problems[0]


def test_expected_kinds_do_not_count_against_thresholds() -> None:
    j = judge(verdict(valid=False, lost=5), Expectation.of(must=["lost"]), T)
    assert j.passed, j


def test_may_kinds_are_tolerated_either_way() -> None:
    exp = Expectation.of(must=["lost"], may=["never_delivered"])
    assert judge(verdict(valid=False, lost=1, never_delivered=3), exp, T).passed
    assert judge(verdict(valid=False, lost=1), exp, T).passed


def test_unknown_verdict_fails_unless_never_delivered_is_tolerated() -> None:
    v = verdict(valid="unknown", never_delivered=1)
    assert not judge(v, CLEAN, T).passed
    assert judge(v, Expectation.of(may=["never_delivered"]), T).passed


def test_latency_and_recovered_ratio_thresholds() -> None:
    metrics = {"stable_latency": {"p99": 2.5}, "reconnects": 10, "recovered": 3}
    t = merge_thresholds({"p99_stable_latency": 2, "min_recovered_ratio": 0.5})
    j = judge(verdict(metrics=metrics), CLEAN, t)
    assert j.crossed == ["p99_stable_latency: 2.500s > 2s", "min_recovered_ratio: 0.30 < 0.5"]
    assert judge(verdict(metrics={"reconnects": 0}), CLEAN, t).passed


def test_bad_configuration_is_named() -> None:
    with pytest.raises(GateConfigError, match="unknown violation kind"):
        Expectation.of(must=["lots"])
    with pytest.raises(GateConfigError, match="unknown threshold 'max_lots'"):
        merge_thresholds({"max_lots": 1})
    with pytest.raises(GateConfigError, match="must be a number"):
        merge_thresholds({"max_lost": "two"})


def test_thresholds_layer_from_pyproject(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.faultlab.thresholds]\nmax_lost = 3\n")
    merged = merge_thresholds(project_thresholds(pyproject), {"max_duplicates": 1})
    assert merged == {**DEFAULT_THRESHOLDS, "max_lost": 3.0, "max_duplicates": 1.0}
    pyproject.write_text("[tool.faultlab\n")
    with pytest.raises(GateConfigError, match=r"pyproject\.toml"):
        project_thresholds(pyproject)
