"""Correct histories by construction, and one planted defect at a time.

The checker is proven on histories whose truth is known: a small seeded simulation
of a strict-receive chat (DESIGN §3.2, §3.3) with many clients, retries, redeliveries
that the strict policy hides, page refreshes, leaves and faults yields a history and
a store snapshot that must be valid; `plant` then breaks exactly one message and says
under which kind DESIGN's precedence puts it. The property tests and the throughput
benchmark both draw from here, so they judge the same kind of history.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

Event = dict[str, Any]
Row = dict[str, Any]

ORDERED_LEVELS = ("at-least-once", "exactly-once")


@dataclass
class Spec:
    """What to simulate. Probabilities are per message (or per fault for `partial`)."""

    seed: int = 0
    clients: int = 12
    messages: int = 100
    pre_rows: int = 0
    level: str = "exactly-once"
    fault_every: int = 40
    retry: float = 0.03
    ack_lost: float = 0.01
    give_up_stored: float = 0.005
    reject: float = 0.005
    refresh: float = 0.004
    refresh_from_zero: float = 0.3
    leave: float = 0.002
    redeliver: float = 0.3
    recovered: float = 0.5


@dataclass
class _Client:
    name: str
    connected: bool = False
    left: bool = False
    floor: int = 0
    shown: set[int] = field(default_factory=set)
    offset: int = 0
    sessions: int = 0
    sent: int = 0


class Synth:
    """One seeded simulated run; iterate `events()` once, then read `rows`."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.rows: list[Row] = [
            {"id": i, "client_offset": None, "content": f"pre-{i}"}
            for i in range(1, spec.pre_rows + 1)
        ]
        self.t = 0.0
        self.clients = [_Client(f"c{i}") for i in range(spec.clients)]
        self._faults = 0
        self._sids = 0

    def _tick(self, mean: float = 0.001) -> float:
        self.t += self.rng.expovariate(1 / mean)
        return round(self.t, 6)

    def _ev(self, actor: str, op: str, **fields: Any) -> Event:
        return {"t": self._tick(), "actor": actor, "op": op, **fields}

    def _deliver(self, c: _Client, row: Row, csr: bool) -> Iterator[Event]:
        rid, content = row["id"], row["content"]
        csr_offset = f"{rid}-csr" if csr else None
        yield self._ev(c.name, "recv", content=content, server_offset=rid, csr_offset=csr_offset)
        if rid > c.floor and rid not in c.shown:
            c.shown.add(rid)
            c.offset = max(c.offset, rid)
            yield self._ev(c.name, "show", content=content, server_offset=rid)

    def _connect(self, c: _Client, recovered: bool) -> Iterator[Event]:
        """(Re)connect and catch up: CSR replay, or every row above the offset sent."""
        self._sids += 1
        c.connected = True
        yield self._ev(c.name, "connect", sid=f"s{self._sids}", recovered=recovered)
        start = c.offset
        if not recovered and c.offset > c.floor and self.rng.random() < self.spec.redeliver:
            start = max(c.floor, c.offset - self.rng.randint(1, 3))
        for row in self.rows[start:]:
            yield from self._deliver(c, row, csr=recovered)

    def _session(self, c: _Client, resume_from: int) -> Iterator[Event]:
        c.sessions += 1
        c.floor = resume_from
        c.shown = set()
        c.offset = resume_from
        yield self._ev(c.name, "session_start", resume_from=resume_from)
        yield from self._connect(c, recovered=False)

    def _store(self, content: str, client_offset: str | None) -> Iterator[Event]:
        row = {"id": len(self.rows) + 1, "client_offset": client_offset, "content": content}
        self.rows.append(row)
        for c in self.clients:
            if c.connected and not c.left:
                yield from self._deliver(c, row, csr=False)

    def _message(self, sender: _Client, n: int) -> Iterator[Event]:
        spec, rng = self.spec, self.rng
        msg = f"m{n}"
        content = f"{sender.name}-{sender.sent}-{n}"
        sender.sent += 1
        client_offset = f"{sender.name}-{sender.sent}" if spec.level == "exactly-once" else None
        me = sender.name
        yield self._ev(me, "send", msg=msg, content=content, client_offset=client_offset)
        yield self._ev(me, "attempt", msg=msg, n=1)
        roll = rng.random()
        if roll < spec.reject:
            yield self._ev(me, "reject", msg=msg, error="invalid")
            return
        roll -= spec.reject
        if roll < spec.retry:
            yield self._ev(me, "attempt", msg=msg, n=2)
            yield from self._store(content, client_offset)
            yield self._ev(me, "ack", msg=msg)
            return
        roll -= spec.retry
        yield from self._store(content, client_offset)
        if roll < spec.give_up_stored:
            yield self._ev(me, "give_up", msg=msg, reason="retries exhausted")
            return
        roll -= spec.give_up_stored
        if roll < spec.ack_lost and spec.level == "exactly-once":
            yield self._ev(me, "attempt", msg=msg, n=2)
        yield self._ev(me, "ack", msg=msg)

    def _fault(self) -> Iterator[Event]:
        """A partition of some clients or a server restart, with messages sent meanwhile."""
        self._faults += 1
        fid = f"f{self._faults}"
        live = [c for c in self.clients if not c.left]
        restart = self.rng.random() < 0.3
        if restart:
            kind, target, cut = "process", "server", live
        else:
            cut = self.rng.sample(live, max(1, len(live) // 3))
            kind, target = "network", [c.name for c in cut]
        fault = {"fault": fid, "kind": kind, "target": target, "params": {}}
        yield self._ev("nemesis", "fault_start", **fault)
        for c in cut:
            c.connected = False
            yield self._ev(c.name, "disconnect", reason="transport close")
        if restart:
            yield self._ev("nemesis", "fault_fired", fault=fid, name="kill")
        talkers = [c for c in live if c.connected]
        for _ in range(self.rng.randint(0, 3) if talkers else 0):
            yield from self._message(self.rng.choice(talkers), self._next_msg())
        yield self._ev("nemesis", "fault_end", **fault)
        for c in cut:
            recovered = not restart and self.rng.random() < self.spec.recovered
            yield from self._connect(c, recovered=recovered)

    def _next_msg(self) -> int:
        self._msgs += 1
        return self._msgs

    def events(self) -> Iterator[Event]:
        """The whole history, in order; `rows` is complete once it is exhausted."""
        spec, rng = self.spec, self.rng
        self._msgs = 0
        yield self._ev("harness", "run_start", store_max_id=spec.pre_rows)
        for c in self.clients:
            yield from self._session(c, 0 if rng.random() < 0.2 else spec.pre_rows)
        while self._msgs < spec.messages:
            live = [c for c in self.clients if not c.left]
            sender = rng.choice(live)
            yield from self._message(sender, self._next_msg())
            roll = rng.random()
            if spec.fault_every and roll < 1 / spec.fault_every:
                yield from self._fault()
            elif (roll := rng.random()) < spec.refresh:
                c = rng.choice(live)
                c.connected = False
                yield self._ev(c.name, "disconnect", reason="page refresh")
                zero = rng.random() < spec.refresh_from_zero
                yield from self._session(c, 0 if zero else c.offset)
            elif roll < spec.refresh + spec.leave and len(live) > 2:
                c = rng.choice(live)
                c.left, c.connected = True, False
                yield self._ev(c.name, "leave")
        yield self._ev("harness", "quiesce_start")
        yield self._ev("harness", "quiesce_end", ok=True)


def generate(spec: Spec) -> tuple[list[Event], list[Row]]:
    """A whole correct history and its store snapshot, in memory (for small runs)."""
    synth = Synth(spec)
    events = list(synth.events())
    return events, synth.rows


def write_run(run_dir: Path, events: list[Event] | Iterator[Event], rows: Callable[[], list[Row]]
              | list[Row], params: dict[str, Any] | None = None) -> Path:
    """Write history.jsonl, store.jsonl and params.json; `rows` may be read after the events."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "history.jsonl", "wb") as out:
        batch: list[bytes] = []
        for ev in events:
            batch.append(orjson.dumps(ev))
            if len(batch) >= 10_000:
                out.write(b"\n".join(batch) + b"\n")
                batch.clear()
        if batch:
            out.write(b"\n".join(batch) + b"\n")
    store_rows = rows() if callable(rows) else rows
    (run_dir / "store.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in store_rows))
    (run_dir / "params.json").write_bytes(
        orjson.dumps({"history_format": 1, **(params or {})}, option=orjson.OPT_INDENT_2)
    )
    return run_dir


def write_synth(run_dir: Path, spec: Spec) -> Path:
    """Stream a simulated run straight to disk (for histories larger than memory)."""
    synth = Synth(spec)
    return write_run(run_dir, synth.events(), lambda: synth.rows, {"level": spec.level,
                                                                    "seed": spec.seed})


def bench_spec(events: int, seed: int = 0) -> Spec:
    """A run with the mix of a real one at about `events` events: ~10 % send/attempt/ack,
    ~85 % recv/show, a fault every 200 messages, a few refreshes and leaves."""
    messages = max(1, events // 27)
    return Spec(seed=seed, clients=12, messages=messages, fault_every=200,
                refresh=min(0.01, 8 / messages), refresh_from_zero=0.1,
                leave=min(0.01, 3 / messages))


# --- planted defects -------------------------------------------------------------

Planted = tuple[list[Event], list[Row], str, str]
"""(events, rows, the planted message's content, the kind DESIGN's precedence gives it)"""


def _sessions(events: list[Event]) -> list[int]:
    """For every event, its actor's display-session number at that point."""
    current: dict[str, int] = {}
    out = []
    for ev in events:
        if ev["op"] == "session_start":
            current[ev["actor"]] = current.get(ev["actor"], 0) + 1
        out.append(current.get(ev["actor"], 0))
    return out


def _last_sessions(events: list[Event]) -> dict[str, int]:
    sessions = _sessions(events)
    last = {}
    for ev, s in zip(events, sessions, strict=True):
        last[ev["actor"]] = s
    left = {ev["actor"] for ev in events if ev["op"] == "leave"}
    return {a: s for a, s in last.items() if a not in left}


def _run_row(rows: list[Row], events: list[Event], rid: int | None) -> bool:
    base = next(ev["store_max_id"] for ev in events if ev["op"] == "run_start")
    return rid is not None and rid > base


def _drop_show(events: list[Event], rows: list[Row], rng: random.Random) -> Planted | None:
    last, sessions = _last_sessions(events), _sessions(events)
    picks = [i for i, ev in enumerate(events)
             if ev["op"] == "show" and last.get(ev["actor"]) == sessions[i]
             and _run_row(rows, events, ev["server_offset"])]
    if not picks:
        return None
    i = rng.choice(picks)
    content = events[i]["content"]
    return events[:i] + events[i + 1:], rows, content, "never_delivered"


def _show_twice(events: list[Event], rows: list[Row], rng: random.Random) -> Planted | None:
    picks = [i for i, ev in enumerate(events) if ev["op"] == "show"]
    if not picks:
        return None
    i = rng.choice(picks)
    return [*events[:i + 1], dict(events[i]), *events[i + 1:]], rows, events[i]["content"], \
        "duplicated_delivered"


def _swap_shows(events: list[Event], rows: list[Row], rng: random.Random) -> Planted | None:
    sessions = _sessions(events)
    prev: dict[tuple[str, int], int] = {}
    pairs = []
    for i, ev in enumerate(events):
        if ev["op"] == "show":
            key = (ev["actor"], sessions[i])
            if key in prev:
                pairs.append((prev[key], i))
            prev[key] = i
    if not pairs:
        return None
    i, j = rng.choice(pairs)
    out = list(events)
    a, b = out[i], out[j]
    out[i] = {**a, "content": b["content"], "server_offset": b["server_offset"]}
    out[j] = {**b, "content": a["content"], "server_offset": a["server_offset"]}
    return out, rows, a["content"], "out_of_order"


def _acked_single_rows(events: list[Event], rows: list[Row]) -> list[tuple[Event, Row]]:
    acked = {ev["msg"] for ev in events if ev["op"] == "ack"}
    copies: dict[str, list[Row]] = {}
    for row in rows:
        copies.setdefault(row["content"], []).append(row)
    return [(ev, copies[ev["content"]][0]) for ev in events
            if ev["op"] == "send" and ev["msg"] in acked
            and len(copies.get(ev["content"], [])) == 1]


def _delete_acked_row(events: list[Event], rows: list[Row], rng: random.Random
                      ) -> Planted | None:
    picks = _acked_single_rows(events, rows)
    if not picks:
        return None
    send, row = rng.choice(picks)
    return events, [r for r in rows if r is not row], send["content"], "lost_acked"


def _duplicate_row(events: list[Event], rows: list[Row], rng: random.Random) -> Planted | None:
    picks = _acked_single_rows(events, rows)
    if not picks:
        return None
    _, row = rng.choice(picks)
    copy = {**row, "id": rows[-1]["id"] + 1}
    return events, [*rows, copy], row["content"], "duplicated_stored"


def _swap_sender_rows(events: list[Event], rows: list[Row], rng: random.Random
                      ) -> Planted | None:
    """Store two of one sender's messages, adjacent rows, in swapped order (as if the
    server had), keeping every receive consistent with the rows."""
    picks = _acked_single_rows(events, rows)
    by_sender: dict[str, list[tuple[Event, Row]]] = {}
    for send, row in picks:
        by_sender.setdefault(send["actor"], []).append((send, row))
    resumes = {ev["resume_from"] for ev in events if ev["op"] == "session_start"}
    pairs = [(x, y) for sent in by_sender.values() for x, y in itertools.pairwise(sent)
             if y[1]["id"] == x[1]["id"] + 1 and x[1]["id"] not in resumes]
    if not pairs:
        return None
    (first, row_a), (second, row_b) = rng.choice(pairs)
    a, b = row_a["id"], row_b["id"]
    swapped = {first["content"]: b, second["content"]: a}
    new_rows = [
        {**row_b, "id": a} if r is row_a else {**row_a, "id": b} if r is row_b else r
        for r in rows
    ]
    new_rows.sort(key=lambda r: r["id"])
    out = [
        {**ev, "server_offset": swapped[ev["content"]]}
        if ev["op"] in ("recv", "show") and ev["content"] in swapped else ev
        for ev in events
    ]
    return out, new_rows, second["content"], "sender_reordered"


def _change_content(events: list[Event], rows: list[Row], rng: random.Random) -> Planted | None:
    by_id = {r["id"]: r for r in rows}
    picks = [i for i, ev in enumerate(events)
             if ev["op"] == "show" and _run_row(rows, events, ev["server_offset"])]
    if not picks:
        return None
    i = rng.choice(picks)
    show = events[i]
    garbled = f"garbled-{show['server_offset']}"
    out = list(events)
    for j in range(i, -1, -1):
        ev = out[j]
        if j == i or (ev["op"] == "recv" and ev["actor"] == show["actor"]
                      and ev["server_offset"] == show["server_offset"]):
            out[j] = {**ev, "content": garbled}
            if j != i:
                break
    return out, rows, by_id[show["server_offset"]]["content"], "corrupted"


def _invent_row(events: list[Event], rows: list[Row], rng: random.Random) -> Planted | None:
    content = f"invented-{rng.randrange(10**9)}"
    last = rows[-1]["id"] if rows else 0
    return events, [*rows, {"id": last + 1, "client_offset": None, "content": content}], \
        content, "phantom"


DEFECTS: dict[str, Callable[[list[Event], list[Row], random.Random], Planted | None]] = {
    "drop_show": _drop_show,
    "show_twice": _show_twice,
    "swap_shows": _swap_shows,
    "delete_acked_row": _delete_acked_row,
    "duplicate_row": _duplicate_row,
    "swap_sender_rows": _swap_sender_rows,
    "change_content": _change_content,
    "invent_row": _invent_row,
}


def plant(defect: str, events: list[Event], rows: list[Row], seed: int = 0) -> Planted | None:
    """Break exactly one message of a correct run; None when this run offers no target."""
    return DEFECTS[defect](events, rows, random.Random(seed))
