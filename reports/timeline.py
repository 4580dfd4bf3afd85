"""Downsampling a scanned history into fixed time bins: rates and stable latency.

Fixed bins keep the plots and results.json the same size whatever the run length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from faultlab.reports.scan import RATE_OPS, HistoryScan

BINS = 200
MIN_BINS = 20
SENDS_PER_BIN = 4  # a short run gets fewer, fuller bins, so rates are not spikes


def _r(values: np.ndarray, digits: int = 4) -> list[float | None]:
    return [None if np.isnan(v) else round(float(v), digits) for v in values]


def bin_timeline(scan: HistoryScan, bins: int | None = None) -> dict[str, Any]:
    """Per-bin event rates (per second) and per-bin stable latency by send time."""
    if bins is None:
        bins = int(np.clip(scan.times["send"].size // SENDS_PER_BIN, MIN_BINS, BINS))
    end = max(scan.duration, 1e-6)
    edges = np.linspace(0.0, end, bins + 1)
    width = float(edges[1] - edges[0])
    rates = {op: _r(np.histogram(scan.times[op], edges)[0] / width, 2) for op in RATE_OPS}
    p50 = np.full(bins, np.nan)
    p99 = np.full(bins, np.nan)
    peak = np.full(bins, np.nan)
    if scan.stable_latency.size:
        idx = np.clip(np.searchsorted(edges, scan.stable_send_t, side="right") - 1, 0, bins - 1)
        order = np.argsort(idx, kind="stable")
        sorted_idx, sorted_lat = idx[order], scan.stable_latency[order]
        starts = np.searchsorted(sorted_idx, np.arange(bins))
        stops = np.searchsorted(sorted_idx, np.arange(bins), side="right")
        for b in np.nonzero(stops > starts)[0]:
            chunk = sorted_lat[starts[b]:stops[b]]
            p50[b], p99[b] = np.percentile(chunk, [50, 99])
            peak[b] = chunk.max()
    return {
        "bin_seconds": round(width, 6),
        "t": _r(edges[:-1] + width / 2),
        "rates": rates,
        "stable_latency": {"p50": _r(p50), "p99": _r(p99), "max": _r(peak)},
    }


def histogram(values: np.ndarray, bins: int = 40) -> dict[str, Any]:
    """A latency distribution as log-spaced bin edges and counts (JSON-friendly)."""
    if values.size == 0:
        return {"edges": [], "counts": []}
    low = max(float(values.min()), 1e-4)
    high = max(float(values.max()), low * 1.01)
    edges = np.geomspace(low, high, bins + 1)
    counts, _ = np.histogram(np.clip(values, low, high), edges)
    return {"edges": _r(edges, 6), "counts": [int(c) for c in counts]}
