"""One streaming pass over history.jsonl (DESIGN §3.3) collecting what the report draws.

The history can hold millions of events, so it is read line by line with orjson and
only compact per-op timestamps and per-message times are kept; binning and
percentiles happen afterwards on numpy arrays. Line by line, so that a truncated
tail is tolerated and every bad line is named.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

KNOWN_OPS = frozenset({
    "run_start", "session_start", "send", "attempt", "ack", "reject", "give_up", "recv",
    "show", "connect", "disconnect", "leave", "fault_start", "fault_end", "fault_fired",
    "quiesce_start", "quiesce_end",
})
RATE_OPS = ("send", "attempt", "retry", "ack", "recv", "show", "give_up", "reject",
            "connect", "disconnect")
MAX_WARNINGS = 20
MAX_LIFECYCLE = 400


@dataclass
class Fault:
    """One fault window, paired from fault_start / fault_end."""

    fault: str
    kind: str
    target: Any
    params: Any
    start: float
    end: float | None = None
    fired: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class HistoryScan:
    """Everything the report needs from one history, in compact form."""

    events: int = 0
    duration: float = 0.0
    truncated_last_line: bool = False
    warnings: list[str] = field(default_factory=list)
    warning_count: int = 0
    store_max_id: int = 0
    quiesce_start: float | None = None
    quiesce_end: float | None = None
    quiesce_ok: bool | None = None
    times: dict[str, np.ndarray] = field(default_factory=dict)
    send_t: dict[str, float] = field(default_factory=dict)
    senders: dict[str, str] = field(default_factory=dict)
    ack_latency: np.ndarray = field(default_factory=lambda: np.empty(0))
    stable_send_t: np.ndarray = field(default_factory=lambda: np.empty(0))
    stable_latency: np.ndarray = field(default_factory=lambda: np.empty(0))
    faults: list[Fault] = field(default_factory=list)
    clients: list[str] = field(default_factory=list)
    left: set[str] = field(default_factory=set)
    sessions: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    links: dict[str, list[tuple[float, str, Any]]] = field(default_factory=dict)
    first_show: dict[str, dict[str, float]] = field(default_factory=dict)
    lifecycles: dict[str, list[dict]] = field(default_factory=dict)

    def warn(self, text: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < MAX_WARNINGS:
            self.warnings.append(text)


def scan(path: Path, watch: set[str] | frozenset[str] = frozenset()) -> HistoryScan:
    """Stream `path` line by line; events naming a watched `msg` or `content` are kept."""
    out = HistoryScan()
    stamps = {op: array("d") for op in RATE_OPS}
    msg_content: dict[str, str] = {}
    send_t = out.send_t
    first_show = out.first_show
    stable_t: dict[str, float] = {}
    ack_lat = array("d")
    faults: dict[str, Fault] = {}
    clients: dict[str, None] = {}
    lifecycles = out.lifecycles
    loads = orjson.loads
    decode_error = orjson.JSONDecodeError
    show_a, recv_a = stamps["show"].append, stamps["recv"].append
    last_t = 0.0
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                ev = loads(line)
            except decode_error:
                if not line.endswith(b"\n"):  # only the last line can lack its newline
                    out.truncated_last_line = True
                    out.warn(f"line {lineno}: truncated last line ignored")
                else:
                    out.warn(f"line {lineno}: not valid JSON, skipped")
                continue
            try:
                t = float(ev["t"])
                op = ev["op"]
                actor = ev["actor"]
                if op == "show":
                    content = ev["content"]
                    show_a(t)
                    seen = first_show.get(actor)
                    if seen is None:
                        seen = first_show[actor] = {}
                    if content not in seen:
                        seen[content] = t
                        stable_t[content] = t
                    if content in watch:
                        _keep(lifecycles, content, ev)
                elif op == "recv":
                    content = ev["content"]
                    recv_a(t)
                    if content in watch:
                        _keep(lifecycles, content, ev)
                elif op == "attempt":
                    stamps["attempt"].append(t)
                    if ev.get("n", 1) > 1:
                        stamps["retry"].append(t)
                    _watch_msg(ev, watch, msg_content, lifecycles)
                elif op == "send":
                    content = ev["content"]
                    msg_content[ev["msg"]] = content
                    stamps["send"].append(t)
                    send_t[content] = t
                    out.senders[content] = actor
                    clients.setdefault(actor)
                    _watch_msg(ev, watch, msg_content, lifecycles)
                elif op == "ack":
                    stamps["ack"].append(t)
                    content = msg_content.get(ev["msg"])
                    if content is not None:
                        ack_lat.append(t - send_t[content])
                    _watch_msg(ev, watch, msg_content, lifecycles)
                elif op in ("reject", "give_up"):
                    stamps[op].append(t)
                    _watch_msg(ev, watch, msg_content, lifecycles)
                elif op in ("connect", "disconnect"):
                    stamps[op].append(t)
                    clients.setdefault(actor)
                    detail = ev.get("recovered") if op == "connect" else ev.get("reason")
                    out.links.setdefault(actor, []).append((t, op, detail))
                elif op == "session_start":
                    clients.setdefault(actor)
                    out.sessions.setdefault(actor, []).append((t, int(ev.get("resume_from") or 0)))
                elif op == "leave":
                    out.left.add(actor)
                elif op in ("fault_start", "fault_end", "fault_fired"):
                    _fault(out, faults, op, ev, t, lineno)
                elif op == "run_start":
                    out.store_max_id = int(ev.get("store_max_id") or 0)
                elif op == "quiesce_start":
                    out.quiesce_start = t
                elif op == "quiesce_end":
                    out.quiesce_end = t
                    out.quiesce_ok = bool(ev.get("ok"))
                elif op not in KNOWN_OPS:
                    out.warn(f"line {lineno}: unknown op {op!r}, skipped")
                    continue
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                out.warn(f"line {lineno}: malformed event ({type(exc).__name__}: {exc}), skipped")
                continue
            out.events += 1
            last_t = t
    out.duration = last_t
    out.times = {op: np.frombuffer(a, dtype=float) if len(a) else np.empty(0)
                 for op, a in stamps.items()}
    out.ack_latency = np.frombuffer(ack_lat, dtype=float) if len(ack_lat) else np.empty(0)
    pairs = [(send_t[c], s - send_t[c]) for c, s in stable_t.items() if c in send_t]
    if pairs:
        arr = np.asarray(pairs, dtype=float)
        out.stable_send_t, out.stable_latency = arr[:, 0], arr[:, 1]
    out.faults = sorted(faults.values(), key=lambda f: f.start)
    out.clients = [c for c in clients if c not in ("nemesis", "harness")]
    return out


def _fault(out: HistoryScan, faults: dict[str, Fault], op: str, ev: dict, t: float,
           lineno: int) -> None:
    fault = str(ev["fault"])
    if op == "fault_start":
        faults[fault] = Fault(fault, str(ev.get("kind") or "?"), ev.get("target"),
                              ev.get("params"), t)
        return
    f = faults.get(fault)
    if f is None:
        out.warn(f"line {lineno}: {op} of fault {fault!r} that never started")
    elif op == "fault_end":
        f.end = t
    else:
        f.fired.append((t, str(ev.get("name"))))


def _keep(lifecycles: dict[str, list[dict]], key: str, ev: dict) -> None:
    kept = lifecycles.setdefault(key, [])
    if len(kept) < MAX_LIFECYCLE:
        kept.append(ev)


def _watch_msg(ev: dict, watch: set[str] | frozenset[str], msg_content: dict[str, str],
               lifecycles: dict[str, list[dict]]) -> None:
    """Keep a msg-keyed event under its content, the key every lifecycle uses."""
    if not watch:
        return
    content = msg_content.get(ev.get("msg"), ev.get("content"))
    if content in watch:
        _keep(lifecycles, content, ev)
