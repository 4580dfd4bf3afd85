"""The gate: a scenario's expectations and thresholds judged against its verdict.

The checker only says which invariants broke (DESIGN §3.4). Whether that fails a
scenario depends on what the scenario promised: a weak level is *expected* to lose
messages under some faults, and coming out clean there means the harness went blind.
This module is pure: (verdict, expectation, thresholds) -> judgement.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultlab.harness.checker.invariants import KINDS

LOSS = ("lost_acked", "lost")
DUPLICATES = ("duplicated_stored", "duplicated_delivered")

DEFAULT_THRESHOLDS: dict[str, float] = {
    "max_lost": 0,
    "max_duplicates": 0,
    "p99_stable_latency": 10.0,
    "min_recovered_ratio": 0.0,
}
THRESHOLD_KEYS = frozenset(DEFAULT_THRESHOLDS)


class GateConfigError(ValueError):
    """A threshold or expectation that cannot be judged (named precisely)."""


@dataclass(frozen=True)
class Expectation:
    """Kinds that must appear (`must`), may appear (`may`); every other kind must be 0."""

    must: frozenset[str] = frozenset()
    may: frozenset[str] = frozenset()

    @classmethod
    def of(cls, must: Iterable[str] = (), may: Iterable[str] = ()) -> Expectation:
        must, may = frozenset(must), frozenset(may)
        unknown = sorted((must | may) - set(KINDS))
        if unknown:
            raise GateConfigError(
                f"unknown violation kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}"
            )
        return cls(must, may - must)

    def as_params(self) -> dict[str, list[str]]:
        """params.json fields: `expected` (DESIGN §3.6) and `tolerated` (may appear)."""
        return {"expected": sorted(self.must), "tolerated": sorted(self.may)}


@dataclass
class Judgement:
    """What the gate decided, with one line per reason."""

    passed: bool
    problems: list[str] = field(default_factory=list)
    crossed: list[str] = field(default_factory=list)


def counts(verdict: Mapping[str, Any]) -> dict[str, int]:
    violations = verdict.get("violations", {})
    return {kind: int(violations.get(kind, {}).get("count", 0)) for kind in KINDS}


def recovered_ratio(metrics: Mapping[str, Any]) -> float | None:
    """Recovered reconnections / reconnections; None when nobody reconnected."""
    reconnects = metrics.get("reconnects") or 0
    return None if not reconnects else (metrics.get("recovered") or 0) / reconnects


def judge(
    verdict: Mapping[str, Any],
    expectation: Expectation,
    thresholds: Mapping[str, float],
) -> Judgement:
    """Pass when every `must` kind appeared, no unexpected kind did, no threshold crossed."""
    seen = counts(verdict)
    problems: list[str] = []
    for kind in sorted(expectation.must):
        if seen[kind] == 0:
            problems.append(
                f"expected {kind} but the run came out clean of it: the harness went blind"
            )
    allowed = expectation.must | expectation.may
    for kind in KINDS:
        if seen[kind] and kind not in allowed:
            problems.append(f"{kind}: {seen[kind]} message(s)")
    if verdict.get("valid") == "unknown" and "never_delivered" not in allowed:
        problems.append("quiescence did not converge before its deadline (verdict unknown)")
    crossed = _crossed(seen, verdict.get("metrics", {}), thresholds, allowed)
    return Judgement(passed=not problems and not crossed, problems=problems, crossed=crossed)


def _crossed(
    seen: Mapping[str, int],
    metrics: Mapping[str, Any],
    thresholds: Mapping[str, float],
    allowed: frozenset[str],
) -> list[str]:
    crossed = []
    lost = sum(seen[k] for k in LOSS if k not in allowed)
    if lost > thresholds["max_lost"]:
        crossed.append(f"max_lost: {lost} > {thresholds['max_lost']:g}")
    dups = sum(seen[k] for k in DUPLICATES if k not in allowed)
    if dups > thresholds["max_duplicates"]:
        crossed.append(f"max_duplicates: {dups} > {thresholds['max_duplicates']:g}")
    p99 = (metrics.get("stable_latency") or {}).get("p99")
    if p99 is not None and p99 > thresholds["p99_stable_latency"]:
        crossed.append(
            f"p99_stable_latency: {p99:.3f}s > {thresholds['p99_stable_latency']:g}s"
        )
    ratio = recovered_ratio(metrics)
    if ratio is not None and ratio < thresholds["min_recovered_ratio"]:
        crossed.append(
            f"min_recovered_ratio: {ratio:.2f} < {thresholds['min_recovered_ratio']:g}"
        )
    return crossed


def merge_thresholds(*layers: Mapping[str, Any] | None) -> dict[str, float]:
    """Defaults, then `[tool.faultlab]`, then a scenario's own: later layers win."""
    merged = dict(DEFAULT_THRESHOLDS)
    for layer in layers:
        for key, value in (layer or {}).items():
            if key not in THRESHOLD_KEYS:
                raise GateConfigError(
                    f"unknown threshold {key!r}; known: {', '.join(sorted(THRESHOLD_KEYS))}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise GateConfigError(f"threshold {key} must be a number >= 0, got {value!r}")
            merged[key] = float(value)
    return merged


def project_thresholds(pyproject: Path) -> dict[str, Any]:
    """`[tool.faultlab.thresholds]` (or flat `[tool.faultlab]` keys) from a pyproject."""
    if not pyproject.is_file():
        return {}
    try:
        data = tomllib.loads(pyproject.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise GateConfigError(f"{pyproject}: {exc}") from exc
    section = data.get("tool", {}).get("faultlab", {})
    flat = {k: v for k, v in section.items() if k in THRESHOLD_KEYS}
    return {**flat, **section.get("thresholds", {})}
