"""The report's charts, drawn with matplotlib and inlined as SVG text.

Every chart takes already-downsampled data (fixed bins, capped rows), so drawing
cost and page size do not grow with the history. Fault windows are drawn the
Jepsen way: one labelled lane per fault kind above the plot, plus a faint band
through the plot itself.
"""

from __future__ import annotations

import io
import re
from typing import Any

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

# Applied with matplotlib.rc_context around drawing, never to the global rcParams.
STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller, searchable, styled by the page
    "svg.hashsalt": "faultlab",  # stable ids: the same run renders to the same bytes
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e7eb",
    "grid.linewidth": 0.6,
    "axes.edgecolor": "#9ca3af",
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.titlelocation": "left",
    "legend.frameon": False,
    "legend.fontsize": 8,
}

PALETTE = ["#e4572e", "#7c3aed", "#0ea5e9", "#f59e0b", "#10b981", "#db2777", "#64748b",
           "#84cc16", "#a16207", "#0f766e"]
RATE_STYLE = {"send": ("#2563eb", "send", False), "ack": ("#16a34a", "ack", False),
              "recv": ("#f59e0b", "receive / client", True),
              "show": ("#9333ea", "show / client", True), "retry": ("#dc2626", "retry", False)}
OP_MARK = {"send": ("o", "#2563eb"), "attempt": ("|", "#1e3a8a"), "ack": ("s", "#16a34a"),
           "reject": ("X", "#b91c1c"), "give_up": ("X", "#dc2626"), "row": ("D", "#0f172a"),
           "recv": ("v", "#f59e0b"), "show": ("^", "#9333ea")}


def fault_colors(kinds: list[str]) -> dict[str, str]:
    """One colour per fault kind, stable within a report."""
    return {k: PALETTE[i % len(PALETTE)] for i, k in enumerate(kinds)}


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def _latency_scale(ax: Any, values: list[float | None]) -> None:
    """A log y scale only when latencies span decades; plain numbers either way."""
    positive = [v for v in values if v is not None and v > 0]
    if positive and max(positive) / min(positive) > 20:
        ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _fault_lanes(ax: Any, faults: list[dict], colors: dict[str, str], xmax: float) -> None:
    kinds = list(dict.fromkeys(f["kind"] for f in faults)) or ["no faults"]
    ax.set_ylim(-0.5, len(kinds) - 0.5)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.invert_yaxis()
    ax.grid(False)
    ax.tick_params(axis="x", labelbottom=False, length=0)
    ax.set_xlim(0, xmax)
    for f in faults:
        lane = kinds.index(f["kind"])
        width = max(f["end"] - f["start"], xmax / 400)
        ax.broken_barh([(f["start"], width)], (lane - 0.35, 0.7), color=colors[f["kind"]],
                       alpha=0.85 if f["healed"] else 0.45)
        ax.text(f["start"] + width / 2, lane, f["fault"], ha="center", va="center",
                fontsize=7, color="white", fontweight="bold", clip_on=True)
        for fired in f["fired"]:
            ax.plot([fired["t"]], [lane], marker="*", color="#111827", markersize=7)


def _shade(ax: Any, faults: list[dict], colors: dict[str, str]) -> None:
    for f in faults:
        ax.axvspan(f["start"], max(f["end"], f["start"] + 1e-6), color=colors[f["kind"]],
                   alpha=0.12, lw=0)


def timeline(run: dict[str, Any], colors: dict[str, str]) -> str:
    """Rates and stable latency over the run, with every fault window marked by kind."""
    tl, faults = run["timeline"], run["faults"]
    xmax = max(run["history"]["duration"], 1e-3)
    fig = Figure(figsize=(10, 5.2))
    lanes = max(1, len({f["kind"] for f in faults}))
    grid = fig.add_gridspec(3, 1, height_ratios=[0.28 * lanes + 0.2, 2.4, 2.0], hspace=0.12,
                            left=0.1, right=0.86, top=0.93, bottom=0.09)
    ax_f = fig.add_subplot(grid[0])
    ax_r = fig.add_subplot(grid[1], sharex=ax_f)
    ax_l = fig.add_subplot(grid[2], sharex=ax_f)
    _fault_lanes(ax_f, faults, colors, xmax)
    ax_f.set_title("Faults, event rates and stable latency", pad=8)
    per_client = max(run["history"]["clients"], 1)
    for op, (color, label, divide) in RATE_STYLE.items():
        series = tl["rates"][op]
        if any(series):
            values = [v / per_client for v in series] if divide else series
            ax_r.plot(tl["t"], values, color=color, lw=1.3, label=label,
                      ls="--" if op in ("retry", "recv") else "-")
    ax_r.set_ylabel("events / s")
    ax_r.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    ax_r.tick_params(axis="x", labelbottom=False)
    lat = tl["stable_latency"]
    t = tl["t"]
    if any(v is not None for v in lat["max"]):
        ax_l.plot(t, _nan(lat["p50"]), color="#2563eb", lw=1.3, marker=".", ms=3, label="p50")
        ax_l.plot(t, _nan(lat["p99"]), color="#dc2626", lw=1.3, marker=".", ms=3, label="p99")
        ax_l.scatter(t, _nan(lat["max"]), s=5, color="#6b7280", label="max", zorder=3)
        _latency_scale(ax_l, lat["p50"] + lat["max"])
        ax_l.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    ax_l.set_ylabel("stable latency (s)\nby send time")
    ax_l.set_xlabel("seconds since the run started")
    q = run["history"]["quiesce"]
    for ax in (ax_r, ax_l):
        _shade(ax, faults, colors)
        if q["start"] is not None:
            ax.axvline(q["start"], color="#111827", lw=0.8, ls=":")
    if q["start"] is not None:
        ax_r.annotate("quiesce", (q["start"], 1), xycoords=("data", "axes fraction"),
                      fontsize=7, ha="right", va="top", rotation=90)
    ax_l.set_xlim(0, xmax)
    return _svg(fig)


def _nan(values: list[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]


def latency(run: dict[str, Any]) -> str:
    """Ack and stable latency distributions, with the verdict's percentiles marked."""
    fig = Figure(figsize=(10, 2.6))
    axes = fig.subplots(1, 2)
    for ax, name, color in zip(axes, ("ack", "stable"), ("#16a34a", "#9333ea"), strict=True):
        hist = run["latency"][name]
        ax.set_title(f"{name} latency")
        if not hist["counts"]:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
            continue
        edges = hist["edges"]
        ax.stairs(hist["counts"], edges, fill=True, color=color, alpha=0.5)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("seconds")
        ax.set_ylabel("messages")
        pct = run["metrics"].get(f"{name}_latency") or {}
        for key, style, height in (("p50", "--", 0.97), ("p99", ":", 0.86)):
            value = pct.get(key)
            if isinstance(value, int | float) and value > 0:
                ax.axvline(value, color="#111827", lw=1, ls=style)
                ax.annotate(f"{key} {value:.3g}s ", (value, height), fontsize=7, ha="right",
                            va="top", xycoords=("data", "axes fraction"),
                            bbox={"fc": "white", "ec": "none", "pad": 0.5})
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.18, top=0.88, wspace=0.25)
    return _svg(fig)


def recovery(run: dict[str, Any], colors: dict[str, str]) -> str:
    """Per fault: each client's reconnect time and convergence time after the fault ended."""
    faults = run["faults"]
    fig = Figure(figsize=(10, 2.6))
    ax = fig.subplots()
    ax.set_title("Recovery after each fault (one dot per client)")
    labels = []
    for i, f in enumerate(faults):
        labels.append(f"{f['fault']} {f['kind']}")
        rec = [c["recovery_seconds"] for c in f["clients"] if c["recovery_seconds"] is not None]
        conv = [c["convergence_seconds"] for c in f["clients"]
                if c["convergence_seconds"] is not None]
        never = sum(1 for c in f["clients"] if c["convergence_seconds"] is None)
        ax.scatter([i - 0.12] * len(rec), rec, marker="o", color=colors[f["kind"]], s=16,
                   label="reconnected" if i == 0 else None)
        ax.scatter([i + 0.12] * len(conv), conv, marker="x", color="#111827", s=16,
                   label="converged" if i == 0 else None)
        if never:
            ax.annotate(f"{never} never converged", (i, 1), xycoords=("data", "axes fraction"),
                        ha="center", va="top", fontsize=7, color="#b91c1c")
    ax.set_xticks(range(len(faults)), labels)
    ax.set_xlim(-0.6, max(len(faults), 1) - 0.4)
    ax.set_ylabel("seconds after\nthe fault ended")
    fig.subplots_adjust(left=0.12, right=0.86, bottom=0.12, top=0.88)
    if faults:
        ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    return _svg(fig)


def lifecycles(run: dict[str, Any], colors: dict[str, str], rows: int = 24) -> str:
    """Each listed violation as a row of its lifecycle events over the fault windows."""
    kinds = [k for k, v in run["violations"].items() if v["messages"]]
    per_kind = max(1, rows // max(len(kinds), 1))
    items = [(k, m) for k in kinds for m in run["violations"][k]["messages"][:per_kind]]
    height = 1.1 + 0.26 * len(items)
    fig = Figure(figsize=(10, height))
    fig.subplots_adjust(left=0.24, right=0.88, bottom=0.55 / height, top=1 - 0.5 / height)
    ax = fig.subplots()
    ax.set_title("Violations: each message's lifecycle against the faults", pad=14)
    _shade(ax, run["faults"], colors)
    for f in run["faults"]:
        ax.annotate(f["fault"], ((f["start"] + f["end"]) / 2, 1.0),
                    xycoords=("data", "axes fraction"), ha="center", va="bottom", fontsize=7,
                    color=colors[f["kind"]])
    points: dict[str, tuple[list[float], list[int]]] = {op: ([], []) for op in OP_MARK}
    spans_x: list[float | None] = []
    spans_y: list[float | None] = []
    for y, (_, m) in enumerate(items):
        ts = [e["t"] for e in m["lifecycle"] if e["t"] is not None]
        if ts:
            spans_x += [min(ts), max(ts), None]
            spans_y += [y, y, None]
        for e in m["lifecycle"]:
            if e["t"] is not None and e["op"] in points:
                points[e["op"]][0].append(e["t"])
                points[e["op"]][1].append(y)
    ax.plot(spans_x, spans_y, color="#d1d5db", lw=1, zorder=1)
    for op, (xs, ys) in points.items():
        if xs:  # one collection per op: drawing cost stays flat with the event count
            marker, color = OP_MARK[op]
            ax.scatter(xs, ys, marker=marker, color=color, s=22, zorder=3, label=op)
    ax.set_yticks(range(len(items)),
                  [f"{kind}: {m['msg'] or m['content']}"[:40] for kind, m in items])
    ax.set_ylim(len(items) - 0.5, -0.5)
    ax.set_xlim(0, max(run["history"]["duration"], 1e-3))
    ax.set_xlabel("seconds since the run started")
    ax.legend(loc="upper left", bbox_to_anchor=(1.005, 1.0))
    return _svg(fig)
