"""CPU per received message of the history's hot path, in a hot loop.

`History.record_received` with the message's encoded tails shared by 50 receivers, as
the lean client does for a broadcast; `History.record_receive` (the tails encoded per
call, as the stock client does); the same two lines through `History.record` (two
dicts, two `orjson` calls); and the shared-tails loop with recording off
(`History(None)`), into a real file. What a
real run pays is higher: there every burst of frames starts on cold caches
(`harness_clients.py` measures the overhead in place, in alternating windows).

    .venv/bin/python benchmarks/history_record.py --calls 200000 --repeat 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from faultlab.harness.history import History, receive_tails

RECEIVERS = 50  # clients per broadcast, as in the harness's CPU figure


def shared(history: History, n: int) -> None:
    record = history.record_received
    tails = receive_tails("c3:0", 100_000, None)
    for i in range(n):
        if i % RECEIVERS == 0:
            tails = receive_tails(f"c3:{i}", 100_000 + i, None)
        record("c17", tails, True)


def templates(history: History, n: int) -> None:
    record = history.record_receive
    for i in range(n):
        record("c17", f"c3:{i}", 100_000 + i, None, True)


def dicts(history: History, n: int) -> None:
    record = history.record
    for i in range(n):
        content, offset = f"c3:{i}", 100_000 + i
        record("c17", "recv", content=content, server_offset=offset, csr_offset=None)
        record("c17", "show", content=content, server_offset=offset)


def per_call(work: Callable[[History, int], None], path: Path | None, n: int) -> float:
    history = History(path)
    try:
        start = time.process_time()
        work(history, n)
        history.flush()
        return (time.process_time() - start) / n * 1e6
    finally:
        history.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="faultlab-history-"))
    cases = {
        "record_received, file": (shared, out / "s.jsonl"),
        "record_receive, file": (templates, out / "t.jsonl"),
        "record x2 (dicts), file": (dicts, out / "d.jsonl"),
        "record_received, History(None)": (shared, None),
    }
    found: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.repeat):  # interleaved, so drift hits every case alike
        for name, (work, path) in cases.items():
            found[name].append(per_call(work, path, args.calls))
    for name, values in found.items():
        print(f"{name:32} median {statistics.median(values):.2f} µs per received message "
              f"({', '.join(f'{v:.2f}' for v in values)})")
    for path in out.iterdir():
        path.unlink()
    out.rmdir()


if __name__ == "__main__":
    main()
