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
import os
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


def _median(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall time and median CPU time of this process (DuckDB's threads included).

    CPU time is reported beside wall time because on a shared machine the wall time
    mostly measures the other processes.
    """
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def _fmt(times: tuple[float, float]) -> str:
    return f"{times[0]:.2f} s wall, {times[1]:.2f} s CPU"


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
            ("scan (orjson streaming), median", _fmt(t_scan)),
            ("peer: DuckDB rate bins only, median", _fmt(t_peer)),
            ("results.json only (scan + analysis), median", _fmt(t_results)),
            ("full render (results + charts + HTML), median", _fmt(t_render)),
            ("index.html size", f"{size / 1e6:.2f} MB"),
            ("results.json size", f"{(out / 'results.json').stat().st_size / 1e6:.2f} MB"),
            ("render budget 10 s (wall)", "met" if t_render[0] < 10 else "MISSED"),
            ("load average (1 min) after", f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"),
            ("size budget 5 MB", "met" if size < 5e6 else "MISSED"),
            ("machine", f"{platform.machine()} {platform.system()}, "
                        f"Python {platform.python_version()}"),
        ]
        width = max(len(k) for k, _ in rows)
        for key, value in rows:
            print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
