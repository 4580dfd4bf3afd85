"""Fault schedules (DESIGN §3.5): the one data format for every way faults are given.

A schedule is a list of ``{"at", "duration", "kind", "target", "params"}``. The same
list comes from a hand-written scenario, ``faultlab run --faults``, Hypothesis, a
replay and ``params.json``, so it is validated here once, with errors that name the
entry and the key, and generated here (seeded) for random exploration.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson


class ScheduleError(ValueError):
    """A schedule that cannot be applied; the message names the entry and the key."""


STREAMS = ("both", "upstream", "downstream")
FAILPOINTS = ("before_insert", "after_commit", "before_broadcast", "during_sync")
FAILPOINT_ACTIONS = ("crash", "delay", "error")
CONDITIONS = ("in_flight", "connected")


@dataclass(frozen=True)
class Param:
    """One parameter of a fault kind: its type, default and allowed values."""

    kind: type | tuple[type, ...]
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    required: bool = False


def _num(default: float, minimum: float = 0) -> Param:
    return Param((int, float), default, minimum=minimum)


_STREAM = Param(str, "both", STREAMS)
_TOXICITY = Param((int, float), 1.0, minimum=0)
# Every kind may wait for a condition before it starts (see `Fault.when`).
_COMMON = {
    "when": Param(str, None, CONDITIONS),
    "when_deadline": _num(10.0),
}


@dataclass(frozen=True)
class Kind:
    """A fault kind: which targets it takes and its parameters."""

    family: str  # network | client | process | store | failpoint
    targets: str  # a regex every target must match
    params: Mapping[str, Param] = field(default_factory=dict)
    instant: bool = False  # duration is ignored (the fault is one action)
    toxic: str | None = None  # the proxy toxic type (network kinds)


_GROUPS = r"all|group:\d+"
_CLIENTS = r"all|group:\d+|client:[\w.\-]+|random:\d+"
KINDS: dict[str, Kind] = {
    # network: through the proxy of one client group, or of every group
    "partition": Kind("network", _GROUPS),
    "blackhole": Kind("network", _GROUPS, {"stream": _STREAM, "toxicity": _TOXICITY},
                      toxic="timeout"),
    "latency": Kind("network", _GROUPS, {"latency": _num(100), "jitter": _num(0),
                                          "stream": _STREAM, "toxicity": _TOXICITY},
                    toxic="latency"),
    "bandwidth": Kind("network", _GROUPS, {"rate": _num(1), "stream": _STREAM,
                                            "toxicity": _TOXICITY}, toxic="bandwidth"),
    "slicer": Kind("network", _GROUPS, {"average_size": _num(16), "size_variation": _num(8),
                                         "delay": _num(1000), "stream": _STREAM,
                                         "toxicity": _TOXICITY}, toxic="slicer"),
    "reset_peer": Kind("network", _GROUPS, {"timeout": _num(0), "stream": _STREAM,
                                             "toxicity": _TOXICITY}, toxic="reset_peer"),
    "slow_close": Kind("network", _GROUPS, {"delay": _num(1000), "stream": _STREAM,
                                             "toxicity": _TOXICITY}, toxic="slow_close"),
    "limit_data": Kind("network", _GROUPS, {"bytes": _num(1024), "stream": _STREAM,
                                             "toxicity": _TOXICITY}, toxic="limit_data"),
    # client: on the simulated clients
    "drop_transport": Kind("client", _CLIENTS, instant=True),
    "refresh": Kind("client", _CLIENTS, {"persist_offset": Param(bool, True)}, instant=True),
    "offline": Kind("client", _CLIENTS),
    "leave": Kind("client", _CLIENTS, instant=True),
    # process: on the server
    "kill": Kind("process", r"server"),
    "restart": Kind("process", r"server"),
    "pause": Kind("process", r"server"),
    # store
    "store_lock": Kind("store", r"store", {"mode": Param(str, "immediate",
                                                          ("immediate", "exclusive"))}),
    "store_error": Kind("store", r"store", {"count": Param(int, 0, minimum=0)}),
    # failpoints armed in the server by name
    "failpoint": Kind("failpoint", r"server", {
        "name": Param(str, None, FAILPOINTS, required=True),
        "action": Param(str, None, FAILPOINT_ACTIONS, required=True),
        "ms": Param(int, 200, minimum=0),
        "count": Param(int, 1, minimum=0),
        "restart": Param(bool, True),
    }),
}


@dataclass(frozen=True)
class Fault:
    """One entry of a schedule, validated, with every parameter filled in."""

    at: float
    duration: float
    kind: str
    target: str
    params: dict[str, Any]

    @property
    def family(self) -> str:
        return KINDS[self.kind].family

    @property
    def when(self) -> str | None:
        """A condition the fault waits for after `at` (``in_flight``: a send in flight)."""
        return self.params.get("when")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check_param(where: str, name: str, spec: Param, value: Any) -> Any:
    kinds = spec.kind if isinstance(spec.kind, tuple) else (spec.kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        expected = " or ".join(k.__name__ for k in kinds)
        raise ScheduleError(f"{where}.params.{name}: expected {expected}, got {value!r}")
    if spec.choices is not None and value not in spec.choices:
        raise ScheduleError(
            f"{where}.params.{name}: {value!r} is not one of {', '.join(map(str, spec.choices))}"
        )
    if spec.minimum is not None and value < spec.minimum:
        raise ScheduleError(f"{where}.params.{name}: must be >= {spec.minimum}, got {value!r}")
    return value


def _target_help(pattern: str) -> str:
    return pattern.replace(r"\d+", "N").replace(r"[\w.\-]+", "ID").replace("|", ", ")


def parse_fault(entry: Any, where: str = "fault") -> Fault:
    """Validate one schedule entry; defaults are filled in so the result is explicit."""
    if not isinstance(entry, Mapping):
        raise ScheduleError(f"{where}: expected an object, got {type(entry).__name__}")
    unknown = set(entry) - {"at", "duration", "kind", "target", "params"}
    if unknown:
        raise ScheduleError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    kind_name = entry.get("kind")
    if kind_name not in KINDS:
        raise ScheduleError(
            f"{where}.kind: {kind_name!r} is not a fault kind (one of {', '.join(KINDS)})"
        )
    kind = KINDS[kind_name]
    numbers = {}
    for key, default in (("at", None), ("duration", 0.0)):
        value = entry.get(key, default)
        if value is None:
            raise ScheduleError(f"{where}.{key}: missing (seconds since the workload started)")
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ScheduleError(f"{where}.{key}: expected seconds >= 0, got {value!r}")
        numbers[key] = float(value)
    target = entry.get("target", "all" if kind.family in ("network", "client") else None)
    if target is None:
        target = {"process": "server", "failpoint": "server", "store": "store"}[kind.family]
    if not isinstance(target, str) or not re.fullmatch(kind.targets, target):
        raise ScheduleError(
            f"{where}.target: {target!r} does not fit kind {kind_name!r} "
            f"(expected one of: {_target_help(kind.targets)})"
        )
    raw = entry.get("params", {})
    if not isinstance(raw, Mapping):
        raise ScheduleError(f"{where}.params: expected an object, got {type(raw).__name__}")
    specs = {**_COMMON, **kind.params}
    for name in raw:
        if name not in specs:
            known = ", ".join(specs)
            raise ScheduleError(f"{where}.params.{name}: unknown for kind {kind_name!r} ({known})")
    params: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in raw:
            params[name] = _check_param(where, name, spec, raw[name])
        elif spec.required:
            raise ScheduleError(f"{where}.params.{name}: required for kind {kind_name!r}")
        elif spec.default is not None and name not in _COMMON:
            params[name] = spec.default
    if "when_deadline" in params and "when" not in params:
        raise ScheduleError(f"{where}.params.when_deadline: only meaningful with 'when'")
    if "when" in params:
        params.setdefault("when_deadline", _COMMON["when_deadline"].default)
    if kind.instant:
        numbers["duration"] = 0.0
    return Fault(numbers["at"], numbers["duration"], kind_name, target, params)


def parse_schedule(data: Any) -> list[Fault]:
    """Validate a whole schedule (a list of entries), ordered by start time."""
    if isinstance(data, Mapping) and "faults" in data:
        data = data["faults"]
    if not isinstance(data, Sequence) or isinstance(data, str | bytes):
        raise ScheduleError(f"schedule: expected a list of faults, got {type(data).__name__}")
    faults = [parse_fault(entry, f"faults[{i}]") for i, entry in enumerate(data)]
    return sorted(faults, key=lambda f: f.at)


def load_schedule(spec: str | Path) -> list[Fault]:
    """A schedule from a JSON file, or inline JSON (``--faults``)."""
    text = str(spec).strip()
    if text.startswith(("[", "{")):
        source, raw = "inline JSON", text.encode()
    else:
        path = Path(text)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ScheduleError(f"{path}: cannot read the schedule ({exc.strerror})") from None
        source = str(path)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ScheduleError(f"{source}: not valid JSON ({exc})") from None
    try:
        return parse_schedule(data)
    except ScheduleError as exc:
        raise ScheduleError(f"{source}: {exc}") from None


def dump_schedule(faults: Sequence[Fault]) -> list[dict[str, Any]]:
    """The JSON form, as written into params.json and accepted back by `load_schedule`."""
    return [f.to_json() for f in faults]


def fault_label(faults: Sequence[Fault]) -> str:
    """A short label for a report's matrix column: the kinds, in order, without repeats."""
    kinds = list(dict.fromkeys(f.kind for f in faults))
    return "+".join(kinds) if kinds else "none"


# Parameter draws for random schedules: small, quick faults that a run recovers from.
_DRAWS: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    "partition": lambda r: {},
    "blackhole": lambda r: {"stream": r.choice(STREAMS)},
    "latency": lambda r: {"latency": r.choice((20, 50, 150)), "jitter": r.choice((0, 10, 50)),
                          "stream": r.choice(STREAMS)},
    "bandwidth": lambda r: {"rate": r.choice((1, 4, 32))},
    "slicer": lambda r: {"average_size": r.choice((8, 64)), "size_variation": 4,
                         "delay": r.choice((100, 2000))},
    "reset_peer": lambda r: {"timeout": r.choice((0, 100))},
    "slow_close": lambda r: {"delay": r.choice((100, 500))},
    "limit_data": lambda r: {"bytes": r.choice((256, 2048))},
    "drop_transport": lambda r: {},
    "refresh": lambda r: {"persist_offset": r.random() < 0.5},
    "offline": lambda r: {},
    "kill": lambda r: {},
    "restart": lambda r: {},
    "pause": lambda r: {},
    "store_lock": lambda r: {"mode": r.choice(("immediate", "exclusive"))},
    "store_error": lambda r: {"count": r.choice((1, 3, 0))},
    "failpoint": lambda r: {"name": r.choice(FAILPOINTS),
                            "action": r.choice(FAILPOINT_ACTIONS), "ms": 200, "count": 1},
}


def random_schedule(
    seed: int,
    *,
    length: float = 10.0,
    faults: int = 3,
    groups: int = 1,
    clients: Sequence[str] = (),
    kinds: Sequence[str] | None = None,
    max_duration: float = 2.0,
) -> list[Fault]:
    """A seeded random schedule: the same seed and arguments give the same schedule."""
    pool = list(kinds if kinds is not None else KINDS)
    for name in pool:
        if name not in KINDS:
            raise ScheduleError(f"kinds: {name!r} is not a fault kind")
    if "leave" in pool and kinds is None:
        pool.remove("leave")  # leaving is a workload decision, not a random fault
    rng = random.Random(seed)
    entries = []
    for _ in range(faults):
        name = rng.choice(pool)
        kind = KINDS[name]
        if kind.family == "network":
            target = rng.choice(["all", *(f"group:{g}" for g in range(groups))])
        elif kind.family == "client":
            target = f"client:{rng.choice(clients)}" if clients else "random:1"
        else:
            target = {"process": "server", "failpoint": "server", "store": "store"}[kind.family]
        at = round(rng.uniform(0, length), 3)
        duration = 0.0 if kind.instant else round(rng.uniform(0.1, max_duration), 3)
        entries.append({"at": at, "duration": duration, "kind": name, "target": target,
                        "params": _DRAWS[name](rng)})
    return parse_schedule(entries)
