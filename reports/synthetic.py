"""Synthetic run directories whose history, store snapshot and verdict agree.

The report is built and tested from the run-directory contract alone (DESIGN §3.6),
so tests and the large-run benchmark need run directories that are consistent by
construction: a small seeded simulation of clients, faults and planted violations,
which writes the history and, knowing what it planted, the verdict.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from faultlab.reports.kinds import VIOLATION_KINDS

RECOVERING_FAULTS = {"partition", "latency", "client_close", "pause"}


@dataclass
class RunSpec:
    """What to simulate; `violations` plants that many messages of each kind."""

    name: str = "clean"
    level: str = "exactly-once"
    fault_kind: str = "partition"
    clients: int = 4
    messages: int = 60
    seed: int = 1
    duration: float = 6.0
    violations: dict[str, int] = field(default_factory=dict)
    expected: list[str] | None = None
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"max_lost": 0, "max_duplicates": 0,
                                 "p99_stable_latency": 2.0, "min_recovered_ratio": 0.5}
    )
    outcome: str | None = None
    quiesce_ok: bool = True


@dataclass
class _Msg:
    index: int
    msg: str
    content: str
    sender: str
    send_t: float
    attempts: list[float] = field(default_factory=list)
    ack_t: float | None = None
    store_t: float | None = None
    rows: list[int] = field(default_factory=list)
    planted: str | None = None
    first_show: dict[str, float] = field(default_factory=dict)


class _Sim:
    """Builds the event list of one run; the one place that knows the planted truth."""

    def __init__(self, spec: RunSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.events: list[tuple[float, int, dict]] = []
        self.clients = [f"c{i + 1}" for i in range(spec.clients)]
        self.faults = self._faults()
        self.outages = {c: self._outages(c) for c in self.clients}
        self.msgs: list[_Msg] = []
        self.rows: list[tuple[int, str | None, str]] = []
        self.by_kind: dict[str, list[_Msg]] = {k: [] for k in VIOLATION_KINDS}
        self.connects: list[tuple[str, float, bool]] = []

    def emit(self, t: float, actor: str, op: str, **fields: object) -> None:
        self.events.append((t, len(self.events), {"t": round(t, 6), "actor": actor, "op": op,
                                                  **fields}))

    def _faults(self) -> list[dict]:
        if self.spec.fault_kind == "none":
            return []
        d = self.spec.duration
        return [
            {"fault": f"f{i + 1}", "kind": self.spec.fault_kind, "start": d * at,
             "end": d * (at + length), "target": "all-clients" if i == 0 else "server",
             "params": {"seed": self.spec.seed + i}}
            for i, (at, length) in enumerate(((0.25, 0.12), (0.55, 0.08)))
        ]

    def _outages(self, client: str) -> list[tuple[float, float, bool]]:
        recovered = self.spec.fault_kind in RECOVERING_FAULTS
        return [(f["start"] + 0.02 + self.rng.uniform(0, 0.05),
                 f["end"] + 0.03 + self.rng.uniform(0, 0.2), recovered) for f in self.faults]

    def offline_until(self, client: str, t: float) -> float | None:
        for down, up, _ in self.outages[client]:
            if down <= t < up:
                return up
        return None

    def run(self) -> None:
        spec = self.spec
        self.emit(0.0, "harness", "run_start", store_max_id=0)
        for c in self.clients:
            self.emit(0.01, c, "session_start", resume_from=0)
            self.emit(0.02, c, "connect", sid=f"{c}-s0", recovered=False)
            for n, (down, up, recovered) in enumerate(self.outages[c], 1):
                self.emit(down, c, "disconnect", reason="transport close")
                self.emit(up, c, "connect", sid=f"{c}-s{n}" if not recovered else f"{c}-s0",
                          recovered=recovered)
                self.connects.append((c, up, recovered))
        for f in self.faults:
            fields = {"fault": f["fault"], "kind": f["kind"], "target": f["target"],
                      "params": f["params"]}
            self.emit(f["start"], "nemesis", "fault_start", **fields)
            self.emit(f["end"], "nemesis", "fault_end", **fields)
            if f["kind"] == "failpoint":
                self.emit(f["start"] + 0.01, "nemesis", "fault_fired", fault=f["fault"],
                          name="after_commit")
        self._sends()
        self._plant()
        self._store_and_broadcast()
        quiet = max(t for t, _, _ in self.events) + 0.2
        self.emit(quiet, "harness", "quiesce_start")
        self.emit(quiet + 0.3, "harness", "quiesce_end", ok=spec.quiesce_ok)

    def _sends(self) -> None:
        spec = self.spec
        span = spec.duration * 0.8
        for i in range(spec.messages):
            sender = self.clients[i % len(self.clients)]
            t = 0.1 + span * i / max(spec.messages, 1) + self.rng.uniform(0, 0.001)
            m = _Msg(i, f"m{i + 1}", f"{spec.name}-{sender}-{i + 1}", sender, t)
            self.emit(t, sender, "send", msg=m.msg, content=m.content,
                      client_offset=f"{sender}-{i + 1}" if spec.level == "exactly-once" else None)
            first = t + 0.001
            up = self.offline_until(sender, first)
            if up is None and self.offline_until(sender, first + 0.03) is not None:
                m.attempts.append(first)  # on the wire as the connection broke: retried
                up = self.offline_until(sender, first + 0.03)
            m.attempts.append(first if up is None else up + 0.002)
            for n, at in enumerate(m.attempts, 1):
                self.emit(at, sender, "attempt", msg=m.msg, n=n)
            m.store_t = m.attempts[-1] + 0.003
            m.ack_t = m.store_t + 0.001
            self.msgs.append(m)

    def _plant(self) -> None:
        """Take messages (spread over the run) and give each one violation."""
        spec = self.spec
        wanted = [k for k in VIOLATION_KINDS for _ in range(spec.violations.get(k, 0))]
        if not wanted:
            return
        if 2 * len(wanted) + len(self.clients) + 4 > len(self.msgs):
            raise ValueError(f"{len(wanted)} planted violations need more than "
                             f"{len(self.msgs)} messages")
        step = max(1, (len(self.msgs) - 4) // (len(wanted) + 1))
        pos = 2
        for kind in wanted:
            pos = min(pos, len(self.msgs) - len(self.clients) - 1)
            while self.msgs[pos].planted or (
                kind == "sender_reordered" and self.msgs[pos + len(self.clients)].planted
            ):
                pos += 1
            self.msgs[pos].planted = kind
            self.by_kind[kind].append(self.msgs[pos])
            if kind == "sender_reordered":
                self.msgs[pos + len(self.clients)].planted = "reorder-peer"
            pos += step

    def _store_and_broadcast(self) -> None:
        order: list[tuple[float, _Msg | None, str]] = []
        for m in self.msgs:
            if m.planted == "lost":
                self.emit(m.attempts[-1] + 0.5, m.sender, "give_up", msg=m.msg,
                          reason="retries exhausted")
                m.store_t = m.ack_t = None
                continue
            if m.planted == "lost_acked":
                self.emit(m.ack_t, m.sender, "ack", msg=m.msg)
                m.store_t = None
                continue
            self.emit(m.ack_t, m.sender, "ack", msg=m.msg)
            order.append((m.store_t, m, m.content))
            if m.planted == "duplicated_stored":
                order.append((m.store_t + 0.0004, m, m.content))
            if m.planted == "phantom":
                order.append((m.store_t + 0.0002, None, f"phantom-{m.index}"))
        for m in self.msgs:
            if m.planted == "sender_reordered":
                peer = self.msgs[m.index + len(self.clients)]
                m.store_t = peer.store_t + 0.0001  # stored after the sender's next one
                order = [o if o[1] is not m else (m.store_t, m, m.content) for o in order]
        order.sort(key=lambda o: o[0])
        last_arrival = dict.fromkeys(self.clients, 0.0)
        for row_id, (store_t, m, content) in enumerate(order, 1):
            self.rows.append((row_id, None if m is None else f"{m.sender}-{m.index + 1}", content))
            if m is not None:
                m.rows.append(row_id)
            for ci, c in enumerate(self.clients):
                arrive = store_t + 0.002 + self.rng.uniform(0, 0.01)
                up = self.offline_until(c, arrive)
                if up is not None:
                    arrive = up + 0.01 + self.rng.uniform(0, 0.01)
                arrive = max(arrive, last_arrival[c] + 1e-5)
                last_arrival[c] = arrive
                self._deliver(c, ci, arrive, row_id, content, m)

    def _deliver(self, c: str, ci: int, at: float, row: int, content: str, m: _Msg | None) -> None:
        planted = m.planted if m is not None else None
        if planted == "never_delivered" and ci == 0:
            return
        if planted == "corrupted" and ci == 0:
            self.emit(at, c, "recv", content=f"{content}~garbled", server_offset=row,
                      csr_offset=None)
            at += 0.001
        show_at = at + 0.0003
        if planted == "out_of_order" and ci == 0:
            show_at = at + 0.05  # shown after the next row
            at = show_at - 0.0003
        self.emit(at, c, "recv", content=content, server_offset=row, csr_offset=None)
        self.emit(show_at, c, "show", content=content, server_offset=row)
        if m is not None:
            m.first_show.setdefault(c, show_at)
        if planted == "duplicated_delivered" and ci == 0:
            self.emit(show_at + 0.001, c, "recv", content=content, server_offset=row,
                      csr_offset=None)
            self.emit(show_at + 0.0013, c, "show", content=content, server_offset=row)

    def verdict(self) -> tuple[dict, list[dict]]:
        every: list[dict] = []
        violations: dict[str, dict] = {}
        planted = {m.msg for ms in self.by_kind.values() for m in ms}
        planted |= {m.content for ms in self.by_kind.values() for m in ms}
        index: dict[str, list[dict]] = {}
        for _, _, e in sorted(self.events, key=lambda e: (e[0], e[1])):
            key = e.get("msg") if e.get("msg") in planted else e.get("content")
            if key in planted:
                index.setdefault(key, []).append(e)
        for kind in VIOLATION_KINDS:
            entries = [self._entry(kind, m, index) for m in self.by_kind[kind]]
            every.extend({"kind": kind, **e} for e in entries)
            violations[kind] = {"count": len(entries), "messages": entries[:100],
                                "more": max(0, len(entries) - 100)}
        any_violation = any(v["count"] for v in violations.values())
        only_never = any_violation and all(
            v["count"] == 0 for k, v in violations.items() if k != "never_delivered")
        valid: bool | str = not any_violation
        if only_never and not self.spec.quiesce_ok:
            valid = "unknown"
        return {"valid": valid, "violations": violations, "metrics": self._metrics()}, every

    def _entry(self, kind: str, m: _Msg, index: dict[str, list[dict]]) -> dict:
        clients = [self.clients[0]] if kind in {"corrupted", "duplicated_delivered",
                                                "out_of_order", "never_delivered"} else []
        end = max([m.send_t, *(m.first_show.values() or [m.send_t])]) + 0.5
        faults = [f["fault"] for f in self.faults if f["start"] <= end and f["end"] >= m.send_t]
        content = f"phantom-{m.index}" if kind == "phantom" else m.content
        lifecycle = sorted(index.get(m.msg, []) + index.get(m.content, []),
                           key=lambda e: e["t"])
        return {"msg": None if kind == "phantom" else m.msg, "content": content,
                "clients": clients, "lifecycle": lifecycle, "faults": faults}

    def _metrics(self) -> dict:
        acked = [m for m in self.msgs if m.ack_t is not None]
        ack_lat = [m.ack_t - m.send_t for m in acked]
        stable = [max(m.first_show.values()) - m.send_t for m in self.msgs if m.first_show]
        worst: dict[str, float] = {}
        for _, up, _ in self.connects:
            fault = [f for f in self.faults if f["start"] <= up][-1]
            worst[fault["fault"]] = max(worst.get(fault["fault"], 0.0), up - fault["end"])
        recovery = [{"fault": f["fault"], "kind": f["kind"],
                     "seconds": round(worst.get(f["fault"], 0.0), 6)} for f in self.faults]
        attempts = sum(len(m.attempts) for m in self.msgs)
        return {
            "sends": len(self.msgs),
            "attempts": attempts,
            "retries": attempts - len(self.msgs),
            "acks": len(acked),
            "rejects": 0,
            "give_ups": len(self.by_kind["lost"]),
            "reconnects": len(self.connects),
            "recovered": sum(1 for _, _, r in self.connects if r),
            "redelivered": 0,
            "ack_latency": _percentiles(ack_lat),
            "stable_latency": _percentiles(stable),
            "recovery_time": recovery,
        }


def _percentiles(values: Iterable[float]) -> dict[str, float | None]:
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {"p50": round(float(p50), 6), "p95": round(float(p95), 6),
            "p99": round(float(p99), 6), "max": round(float(arr.max()), 6)}


def write_run(spec: RunSpec, run_dir: Path) -> Path:
    """Simulate `spec` and write a complete run directory; returns it."""
    sim = _Sim(spec)
    sim.run()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "logs").mkdir(exist_ok=True)
    (run_dir / "logs" / "server.log").write_text("started\n")
    expected = spec.expected if spec.expected is not None else sorted(
        k for k, n in spec.violations.items() if n)
    params = {
        "scenario": f"scenarios/test_synthetic.py::test_{spec.name}",
        "level": spec.level, "receive": "strict", "recovery": "memory",
        "transport": "websocket", "target": "reference", "seed": spec.seed,
        "schedule": [{"at": round(f["start"], 6), "duration": round(f["end"] - f["start"], 6),
                      "kind": f["kind"], "target": f["target"], "params": f["params"]}
                     for f in sim.faults],
        "expected": expected, "thresholds": spec.thresholds,
        "versions": {"python": "3.11.2", "python-socketio": "5.18.1",
                     "proxy": "embedded 0.1.0", "machine": "x86_64 Linux (synthetic)"},
        "history_format": 1, "fault_kind": spec.fault_kind,
        "replay": f"faultlab run --seed {spec.seed} --level {spec.level}",
    }
    if spec.outcome is not None:
        params["outcome"] = spec.outcome
    (run_dir / "params.json").write_bytes(orjson.dumps(params, option=orjson.OPT_INDENT_2))
    sim.events.sort(key=lambda e: (e[0], e[1]))
    with (run_dir / "history.jsonl").open("wb") as out:
        out.writelines(orjson.dumps(e) + b"\n" for _, _, e in sim.events)
    with (run_dir / "store.jsonl").open("wb") as out:
        out.writelines(orjson.dumps({"id": i, "client_offset": o, "content": c}) + b"\n"
                       for i, o, c in sim.rows)
    verdict, every = sim.verdict()
    (run_dir / "verdict.json").write_bytes(orjson.dumps(verdict, option=orjson.OPT_INDENT_2))
    with (run_dir / "violations.jsonl").open("wb") as out:
        out.writelines(orjson.dumps(e) + b"\n" for e in every)
    return run_dir


def every_kind(count: int = 1) -> dict[str, int]:
    """A violation plan with `count` messages of every kind."""
    return dict.fromkeys(VIOLATION_KINDS, count)
