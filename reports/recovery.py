"""Per client, after each fault: how long until it reconnected and until it converged.

Recovery time: from the fault's end to the client's first connect after a disconnect
that happened inside the fault window, widened by LEAD before and GRACE after (0 if
it was back before the fault ended).
Convergence time: from the fault's end until the client had shown every stored
message sent before the fault ended (rows at or below a session's `resume_from`
count as seen from that session's start). Clients that `leave` are not judged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faultlab.reports.scan import Fault, HistoryScan

LEAD = 0.25  # the nemesis logs fault_start after acting: a disconnect may come first
GRACE = 1.0  # a disconnect this soon after a fault's end is still that fault's doing
CLIENT_CLOSE = "io client disconnect"  # the client hanging up on purpose is no fault's doing


def _recovery(links: list[tuple[float, str, Any]], start: float, end: float) -> dict[str, Any]:
    down = next((t for t, op, why in links if op == "disconnect" and why != CLIENT_CLOSE
                 and start - LEAD <= t <= end + GRACE), None)
    if down is None:
        return {"disconnected": False, "seconds": None, "recovered": None}
    back = next(((t, r) for t, op, r in links if op == "connect" and t > down), None)
    if back is None:
        return {"disconnected": True, "seconds": None, "recovered": None}
    return {"disconnected": True, "seconds": round(max(0.0, back[0] - end), 4),
            "recovered": bool(back[1])}


def per_fault(scan: HistoryScan, store: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per fault with a row per judged client."""
    judged = [c for c in scan.clients if c not in scan.left]
    row_of: dict[str, int] = {}
    for row in store:
        if row["id"] > scan.store_max_id:
            row_of.setdefault(str(row.get("content")), row["id"])
    contents = [c for c in scan.send_t if c in row_of]
    send_times = np.asarray([scan.send_t[c] for c in contents], dtype=float)
    ids = np.asarray([row_of[c] for c in contents], dtype=float)
    order = np.argsort(send_times, kind="stable")
    send_times, ids = send_times[order], ids[order]
    contents = [contents[i] for i in order]
    caught_up: dict[str, np.ndarray] = {}
    for client in judged:
        shown = scan.first_show.get(client, {})
        st = np.asarray([shown.get(c, np.inf) for c in contents], dtype=float)
        for t0, resume_from in scan.sessions.get(client, []):
            st = np.where(ids <= resume_from, np.minimum(st, t0), st)
        caught_up[client] = np.maximum.accumulate(st) if st.size else st
    result = []
    for f in scan.faults:
        end = f.end if f.end is not None else scan.duration
        i = int(np.searchsorted(send_times, end, side="left"))
        rows = []
        for client in judged:
            rec = _recovery(scan.links.get(client, []), f.start, end)
            conv: float | None = 0.0
            if i > 0:
                last = float(caught_up[client][i - 1])
                conv = None if np.isinf(last) else round(max(0.0, last - end), 4)
            rows.append({"client": client, **{f"recovery_{k}": v for k, v in rec.items()},
                         "convergence_seconds": conv})
        result.append({**fault_dict(f, scan.duration), "clients": rows})
    return result


def fault_dict(f: Fault, duration: float) -> dict[str, Any]:
    """A fault window as JSON; an unhealed fault ends with the history."""
    return {"fault": f.fault, "kind": f.kind, "target": f.target, "params": f.params,
            "start": round(f.start, 6), "end": round(f.end if f.end is not None else duration, 6),
            "healed": f.end is not None,
            "fired": [{"t": round(t, 6), "name": n} for t, n in f.fired]}


def reconnect_summary(scan: HistoryScan) -> dict[str, Any]:
    """Reconnects seen in the history (connects after each client's first) and recovered ones."""
    reconnects = recovered = 0
    for links in scan.links.values():
        connects = [r for _, op, r in links if op == "connect"]
        reconnects += max(0, len(connects) - 1)
        recovered += sum(1 for r in connects[1:] if r)
    return {"reconnects": reconnects, "recovered": recovered,
            "recovered_ratio": round(recovered / reconnects, 4) if reconnects else None}
