"""How long a 1,000,000-event run takes to render, and how big the page gets.

Budget (issue 8): under 10 s and an index.html under 5 MB. Generates one synthetic
run directory (20 clients, two partitions, 150 planted messages of every violation
kind) with the same generator the tests use, then times, as medians of --repeat:
the history scan alone, results.json alone (scan + analysis), and the full render.
Peer: DuckDB binning the same history into the same rate bins (rates only), to show
what the streaming orjson scan costs against a columnar engine.

    .venv/bin/python benchmarks/report_big_run.py [--events 1000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb

from faultlab.reports import render
from faultlab.reports.results import build
from faultlab.reports.scan import scan
from faultlab.reports.synthetic import RunSpec, every_kind, write_run

CLIENTS = 20
EVENTS_PER_MESSAGE = 3 + 2 * CLIENTS  # send, attempt, ack + a recv and a show per client


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _duckdb_rates(history: Path, bins: int = 200) -> int:
    con = duckdb.connect()
    try:
        rows = con.execute(
            "WITH h AS (SELECT t, op FROM read_json(?, format='newline_delimited', "
            "columns={'t': 'DOUBLE', 'op': 'VARCHAR'})) "
            "SELECT op, floor(t / (SELECT max(t) FROM h) * ?) AS b, count(*) FROM h GROUP BY ALL",
            [str(history), bins]).fetchall()
    finally:
        con.close()
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="faultlab-report-bench-") as tmp:
        run = Path(tmp) / "run"
        spec = RunSpec(name="big", clients=CLIENTS, duration=600.0, seed=11,
                       messages=args.events // EVENTS_PER_MESSAGE + 1,
                       violations=every_kind(150), expected=[])
        write_run(spec, run)
        history = run / "history.jsonl"
        events = sum(1 for _ in history.open("rb"))
        t_scan = _median(lambda: scan(history), args.repeat)
        t_peer = _median(lambda: _duckdb_rates(history), args.repeat)
        t_results = _median(lambda: build([run]), args.repeat)
        out = Path(tmp) / "report"
        t_render = _median(lambda: render([run], out), args.repeat)
        size = (out / "index.html").stat().st_size
        rows = [
            ("history events", f"{events:,}"),
            ("history.jsonl size", f"{history.stat().st_size / 1e6:.1f} MB"),
            ("scan (orjson streaming), median", f"{t_scan:.2f} s"),
            ("peer: DuckDB rate bins only, median", f"{t_peer:.2f} s"),
            ("results.json only (scan + analysis), median", f"{t_results:.2f} s"),
            ("full render (results + charts + HTML), median", f"{t_render:.2f} s"),
            ("index.html size", f"{size / 1e6:.2f} MB"),
            ("results.json size", f"{(out / 'results.json').stat().st_size / 1e6:.2f} MB"),
            ("render budget 10 s", "met" if t_render < 10 else "MISSED"),
            ("size budget 5 MB", "met" if size < 5e6 else "MISSED"),
            ("machine", f"{platform.machine()} {platform.system()}, "
                        f"Python {platform.python_version()}"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
