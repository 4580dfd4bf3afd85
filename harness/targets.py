"""Targets (DESIGN §3.7): a server under test described as data, in a small TOML file.

A target says how to start the server (argv and environment with placeholders for
the host, port, store, level, recovery mode and timer knobs), how to know it serves,
where its store is and what it claims to support. The reference server is the
default; any server that follows the chat contract can be described the same way.
"""

from __future__ import annotations

import socket
import sys
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faultlab.harness.clients.base import LEVELS, RECOVERY_MODES

SHIPPED = Path(__file__).with_name("targets")
ACK_ORDERS = ("after-broadcast", "before-broadcast")
PORT_MODES = ("announce", "pick")
KNOBS = {  # knob -> default, in seconds
    "ping_interval": 25.0,
    "ping_timeout": 20.0,
    "recovery_window": 120.0,
    "busy_timeout": 5.0,
}
PLACEHOLDERS = (
    "python", "host", "port", "db", "delivery", "recovery", "target_dir",
    *KNOBS, *(f"{k}_ms" for k in KNOBS),
)


class TargetError(ValueError):
    """A target file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class StoreSpec:
    """Where a target keeps its messages (SQLite only for now)."""

    kind: str
    path: str
    table: str = "messages"
    id: str = "id"
    client_offset: str = "client_offset"
    content: str = "content"


@dataclass(frozen=True)
class Target:
    """A parsed target file; `render` turns it into a concrete command line."""

    name: str
    source: Path
    start: tuple[str, ...]
    health: str
    acks: str
    levels: tuple[str, ...]
    recovery: tuple[str, ...]
    store: StoreSpec
    env: Mapping[str, str] = field(default_factory=dict)
    port: str = "announce"
    failpoints: str | None = None
    startup_deadline: float = 15.0

    def supports(self, level: str, recovery: str) -> str | None:
        """Why this target cannot run `level` with `recovery`, or None when it can."""
        if level not in self.levels:
            return (f"target {self.name!r} does not support level {level!r} "
                    f"({', '.join(self.levels)})")
        if recovery not in self.recovery:
            return (f"target {self.name!r} does not support recovery {recovery!r} "
                    f"({', '.join(self.recovery)})")
        return None

    def values(self, *, host: str, port: int, db: Path, delivery: str, recovery: str,
               knobs: Mapping[str, float] | None = None) -> dict[str, str]:
        """Every placeholder's value for one start of this target."""
        timers = {**KNOBS, **(knobs or {})}
        unknown = set(timers) - set(KNOBS)
        if unknown:
            raise TargetError(f"unknown timer knob {sorted(unknown)[0]!r} ({', '.join(KNOBS)})")
        out = {
            "python": sys.executable, "host": host, "port": str(port), "db": str(db),
            "delivery": delivery, "recovery": recovery, "target_dir": str(self.source.parent),
        }
        for knob, seconds in timers.items():
            out[knob] = _seconds(seconds)
            out[f"{knob}_ms"] = str(round(seconds * 1000))
        return out

    def argv(self, values: Mapping[str, str]) -> list[str]:
        return [_fill(arg, values, self.source, "start") for arg in self.start]

    def environment(self, values: Mapping[str, str]) -> dict[str, str]:
        return {k: _fill(v, values, self.source, f"env.{k}") for k, v in self.env.items()}

    def store_path(self, values: Mapping[str, str]) -> Path:
        return Path(_fill(self.store.path, values, self.source, "store.path"))


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _fill(template: str, values: Mapping[str, str], source: Path, key: str) -> str:
    try:
        return template.format_map(values)
    except KeyError as exc:
        raise TargetError(
            f"{source}: {key}: unknown placeholder {{{exc.args[0]}}} "
            f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)})"
        ) from None
    except (ValueError, IndexError) as exc:
        raise TargetError(f"{source}: {key}: bad template {template!r} ({exc})") from None


def free_port(host: str = "127.0.0.1") -> int:
    """A port that is free right now, for targets that cannot announce their own."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], source: Path,
         default: Any = ..., prefix: str = "") -> Any:
    if key not in data:
        if default is ...:
            raise TargetError(f"{source}: {prefix}{key}: missing")
        return default
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise TargetError(f"{source}: {prefix}{key}: expected {names}, got {value!r}")
    return value


def _subset(values: list[Any], allowed: tuple[str, ...], source: Path, key: str) -> tuple[str, ...]:
    for value in values:
        if value not in allowed:
            raise TargetError(f"{source}: {key}: {value!r} is not one of {', '.join(allowed)}")
    if not values:
        raise TargetError(f"{source}: {key}: must not be empty")
    return tuple(values)


def parse_target(data: Mapping[str, Any], source: Path) -> Target:
    """Validate a target file's content; every error names the key."""
    known = {"name", "start", "health", "acks", "levels", "recovery", "env", "store", "port",
             "failpoints", "startup_deadline", "description"}
    for key in data:
        if key not in known:
            raise TargetError(f"{source}: {key}: unknown key ({', '.join(sorted(known))})")
    start = _get(data, "start", list, source)
    if not start or not all(isinstance(a, str) for a in start):
        raise TargetError(f"{source}: start: expected a non-empty list of strings")
    env = _get(data, "env", dict, source, {})
    for k, v in env.items():
        if not isinstance(v, str):
            raise TargetError(f"{source}: env.{k}: expected a string, got {v!r}")
    store_data = _get(data, "store", dict, source)
    kind = _get(store_data, "kind", str, source, prefix="store.")
    if kind != "sqlite":
        raise TargetError(f"{source}: store.kind: {kind!r} is not supported (sqlite)")
    store = StoreSpec(
        kind=kind,
        path=_get(store_data, "path", str, source, prefix="store."),
        **{k: _get(store_data, k, str, source, getattr(StoreSpec, k), "store.")
           for k in ("table", "id", "client_offset", "content")},
    )
    for k in store_data:
        if k not in ("kind", "path", "table", "id", "client_offset", "content"):
            raise TargetError(f"{source}: store.{k}: unknown key")
    acks = _get(data, "acks", str, source)
    if acks not in ACK_ORDERS:
        raise TargetError(f"{source}: acks: {acks!r} is not one of {', '.join(ACK_ORDERS)}")
    port = _get(data, "port", str, source, "announce")
    if port not in PORT_MODES:
        raise TargetError(f"{source}: port: {port!r} is not one of {', '.join(PORT_MODES)}")
    health = _get(data, "health", str, source)
    if not health.startswith("/"):
        raise TargetError(f"{source}: health: expected a URL path like '/healthz', got {health!r}")
    target = Target(
        name=_get(data, "name", str, source),
        source=source,
        start=tuple(start),
        health=health,
        acks=acks,
        levels=_subset(_get(data, "levels", list, source), LEVELS, source, "levels"),
        recovery=_subset(_get(data, "recovery", list, source), RECOVERY_MODES, source,
                         "recovery"),
        store=store,
        env=env,
        port=port,
        failpoints=_get(data, "failpoints", str, source, None),
        startup_deadline=float(_get(data, "startup_deadline", (int, float), source, 15.0)),
    )
    probe = target.values(host="h", port=1, db=Path("d"), delivery="l", recovery="r")
    target.argv(probe)
    target.environment(probe)
    target.store_path(probe)
    return target


def load_target(spec: str | Path | None = None) -> Target:
    """A target from a file path, or a shipped target's name (`reference`, `node-peer`)."""
    if spec is None:
        spec = "reference"
    path = Path(spec)
    if not path.suffix and not path.exists():
        path = SHIPPED / f"{spec}.toml"
        if not path.exists():
            shipped = ", ".join(sorted(p.stem for p in SHIPPED.glob("*.toml")))
            raise TargetError(f"{spec}: no such target file or shipped target ({shipped})")
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise TargetError(f"{path}: cannot read the target file ({exc.strerror})") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetError(f"{path}: not valid TOML ({exc})") from None
    return parse_target(data, path.resolve())
