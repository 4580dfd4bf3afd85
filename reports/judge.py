"""A run's thresholds and expectations, read against its verdict.

The gate (pytest plugin) owns the pass/fail decision and may record it as
`params.outcome`; the report shows that word when present and otherwise derives the
same reading from the saved files, always listing the reasons so a reader sees why.
"""

from __future__ import annotations

import re
from typing import Any

from faultlab.reports.kinds import GROUPS, VIOLATION_KINDS

_LATENCY = re.compile(r"^(p50|p95|p99|max)_(ack|stable)_latency$")
_ALIASES = {"max_lost": GROUPS["lost"], "max_duplicates": GROUPS["duplicated"],
            "max_violations": VIOLATION_KINDS}


def _observed(name: str, counts: dict[str, int], metrics: dict[str, Any],
              allowed: set[str]) -> tuple[Any, str]:
    """The observed value a threshold limits and whether it is an upper ('max') or lower bound.

    Count thresholds ignore the kinds the scenario allows (expected or tolerated), as the
    gate does: a weak level expected to lose messages is not failed again by `max_lost`.
    """
    m = _LATENCY.match(name)
    if m:
        return (metrics.get(f"{m.group(2)}_latency") or {}).get(m.group(1)), "max"
    if name in _ALIASES:
        return sum(counts[k] for k in _ALIASES[name] if k not in allowed), "max"
    if name.startswith("max_") and name[4:] in VIOLATION_KINDS:
        return (0 if name[4:] in allowed else counts[name[4:]]), "max"
    if name == "min_recovered_ratio":
        reconnects = metrics.get("reconnects") or 0
        ratio = (metrics.get("recovered") or 0) / reconnects if reconnects else None
        return (None if ratio is None else round(ratio, 4)), "min"
    if name == "max_recovery_time":
        times = [x.get("seconds") if isinstance(x, dict) else x
                 for x in metrics.get("recovery_time") or []]
        times = [x for x in times if isinstance(x, int | float)]
        return (max(times) if times else None), "max"
    return None, "unknown"


def allowed_kinds(params: dict[str, Any]) -> set[str]:
    """Kinds the scenario expects (must appear) or tolerates (may appear)."""
    return {str(k) for k in (params.get("expected") or []) + (params.get("tolerated") or [])}


def thresholds(params: dict[str, Any], counts: dict[str, int],
               metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Every threshold with its limit, the observed value and whether it was crossed."""
    rows = []
    allowed = allowed_kinds(params)
    for name, limit in sorted((params.get("thresholds") or {}).items()):
        observed, bound = _observed(name, counts, metrics, allowed)
        crossed = False
        if observed is not None and isinstance(limit, int | float):
            crossed = observed > limit if bound == "max" else observed < limit
        rows.append({"name": name, "limit": limit, "observed": observed, "bound": bound,
                     "crossed": crossed, "judged": bound != "unknown" and observed is not None})
    return rows


def expectations(params: dict[str, Any], counts: dict[str, int],
                 valid: Any = True) -> dict[str, list[str]]:
    """Observed kinds nobody allowed, expected kinds that did not show, and kinds left
    undecided (never_delivered when quiescence did not converge: verdict "unknown")."""
    observed = [k for k in VIOLATION_KINDS if counts.get(k, 0) > 0]
    allowed = allowed_kinds(params)
    unexpected = [k for k in observed if k not in allowed]
    undecided = ["never_delivered"] if valid == "unknown" and "never_delivered" in unexpected \
        else []
    return {"observed": observed,
            "unexpected": [k for k in unexpected if k not in undecided],
            "undecided": undecided,
            "missing": [str(k) for k in params.get("expected") or [] if counts.get(k, 0) == 0]}


def outcome(params: dict[str, Any], expect: dict[str, list[str]],
            limits: list[dict[str, Any]]) -> tuple[str, str, list[str]]:
    """(outcome, who decided it: 'gate' or 'report', reasons)."""
    reasons = []
    if expect["unexpected"]:
        reasons.append("unexpected " + ", ".join(expect["unexpected"]))
    if expect["missing"]:
        reasons.append("expected " + ", ".join(expect["missing"]) + ", not observed")
    reasons += [f"{t['name']}: {t['observed']} vs limit {t['limit']}" for t in limits
                if t["crossed"]]
    failed = bool(reasons)
    if expect["undecided"]:
        reasons.append("quiescence did not converge: never_delivered is undecided")
    gate = params.get("outcome")
    if gate in ("pass", "fail"):
        return gate, "gate", reasons
    if failed:
        return "fail", "report", reasons
    return ("unknown" if expect["undecided"] else "pass"), "report", reasons
