"""Hand-written run directories for the checker's tests: a tiny script of a run.

`Run` records history lines with a steadily advancing clock and keeps the store
snapshot beside them; `message` plays the tutorial's happy path (send, attempt,
insert, broadcast to every connected client, ack) so a test only writes the part
that differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faultlab.harness.checker import check_run
from faultlab.harness.checker.synth import write_run


class Run:
    def __init__(self, root: Path, clients: tuple[str, ...] = ("c1", "c2"),
                 pre_rows: int = 0, level: str = "exactly-once") -> None:
        self.root = root
        self.level = level
        self.events: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = [
            {"id": i, "client_offset": None, "content": f"old-{i}"} for i in range(1, pre_rows + 1)
        ]
        self.t = 0.0
        self.connected: list[str] = []
        self.ev("harness", "run_start", store_max_id=pre_rows)
        for c in clients:
            self.session(c, pre_rows)
            self.connect(c)

    def ev(self, actor: str, op: str, **fields: Any) -> None:
        self.t += 0.01
        self.events.append({"t": round(self.t, 6), "actor": actor, "op": op, **fields})

    def session(self, client: str, resume_from: int) -> None:
        self.ev(client, "session_start", resume_from=resume_from)

    def connect(self, client: str, recovered: bool = False) -> None:
        self.ev(client, "connect", sid=f"sid-{client}-{len(self.events)}", recovered=recovered)
        self.connected.append(client)

    def disconnect(self, client: str) -> None:
        self.ev(client, "disconnect", reason="transport close")
        self.connected.remove(client)

    def store(self, content: str, client_offset: str | None = None) -> int:
        rid = len(self.rows) + 1 if not self.rows else self.rows[-1]["id"] + 1
        self.rows.append({"id": rid, "client_offset": client_offset, "content": content})
        return rid

    def deliver(self, client: str, content: str, rid: int | None, show: bool = True) -> None:
        self.ev(client, "recv", content=content, server_offset=rid, csr_offset=None)
        if show:
            self.ev(client, "show", content=content, server_offset=rid)

    def broadcast(self, content: str, rid: int) -> None:
        for c in self.connected:
            self.deliver(c, content, rid)

    def send(self, sender: str, msg: str) -> str:
        content = f"{sender}:{msg}"
        self.ev(sender, "send", msg=msg, content=content, client_offset=f"{sender}-{msg}")
        return content

    def message(self, sender: str, msg: str) -> int:
        """Happy path: send, attempt 1, stored, broadcast, ack; returns the row id."""
        content = self.send(sender, msg)
        self.ev(sender, "attempt", msg=msg, n=1)
        rid = self.store(content, f"{sender}-{msg}")
        self.broadcast(content, rid)
        self.ev(sender, "ack", msg=msg)
        return rid

    def quiesce(self, ok: bool = True) -> None:
        self.ev("harness", "quiesce_start")
        self.ev("harness", "quiesce_end", ok=ok)

    def write(self) -> Path:
        return write_run(self.root, self.events, self.rows, {"level": self.level})

    def check(self) -> dict[str, Any]:
        self.write()
        return check_run(self.root)


def counts(verdict: dict[str, Any]) -> dict[str, int]:
    """Only the kinds above zero."""
    return {k: v["count"] for k, v in verdict["violations"].items() if v["count"]}


def named(verdict: dict[str, Any], kind: str) -> list[str]:
    """The contents listed under one kind."""
    return [m["content"] for m in verdict["violations"][kind]["messages"]]
