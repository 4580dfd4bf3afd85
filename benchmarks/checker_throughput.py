"""Checker throughput: events/s end to end (read + every invariant + metrics + verdict).

Histories come from `faultlab.harness.checker.synth.bench_spec`, the mix of a real run
(~10 % send/attempt/ack, ~85 % recv/show, faults and reconnects). Every measurement
runs in a fresh child process, so peak RSS is the checker's own; the peer in the same
run is a pure-Python reader (orjson per line + one pass that tallies ops and per-message
fates), the baseline the engine was chosen against.

    .venv/bin/python benchmarks/checker_throughput.py --sizes 1e4,1e5,1e6,1e7 --repeat 3

`--baseline DIR` also times the checker of another checkout (e.g. `git worktree add
/tmp/checker-old <commit>`) on the same histories, alternating with this one child by
child, so old and new are compared in the same minutes on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import orjson

CACHE = Path("/tmp/faultlab-bench-checker")


def use_checker_of(tree: str | None) -> None:
    """Make `faultlab.harness` import from another checkout's `harness/` (before any
    import of it), so one venv can run an old and a new checker side by side."""
    if tree:
        import faultlab.harness

        faultlab.harness.__path__ = [str(Path(tree) / "harness")]


def _child_checker(run_dir: Path, tree: str | None = None) -> dict[str, float]:
    use_checker_of(tree)
    from faultlab.harness.checker import check_run

    start = time.perf_counter()
    verdict = check_run(run_dir)
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    assert verdict["valid"] is True, verdict["violations"]
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def _child_peer(run_dir: Path) -> dict[str, float]:
    start = time.perf_counter()
    ops: dict[str, int] = {}
    fate: dict[str, str] = {}
    with open(run_dir / "history.jsonl", "rb") as f:
        for raw in f:
            ev = orjson.loads(raw)
            op = ev["op"]
            ops[op] = ops.get(op, 0) + 1
            if "msg" in ev:
                fate[ev["msg"]] = op
    wall = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024}


def _measure(kind: str, run_dir: Path, timeout: float) -> dict[str, float]:
    """One fresh child: "checker", "peer" or "baseline=DIR" (the checker of DIR)."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", kind, str(run_dir)],
        capture_output=True, timeout=timeout, check=True,
    )
    return orjson.loads(done.stdout)


def _ensure(size: int, seed: int) -> tuple[Path, int]:
    from faultlab.harness.checker.synth import bench_spec, write_synth

    run_dir = CACHE / f"events-{size}-seed-{seed}"
    if not (run_dir / "params.json").exists():
        write_synth(run_dir, bench_spec(size, seed))
    with open(run_dir / "history.jsonl", "rb") as f:
        events = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 24), b""))
    return run_dir, events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1e4,1e5,1e6")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--peer-max", type=float, default=1e6,
                        help="largest size the pure-Python peer is run on")
    parser.add_argument("--baseline", metavar="DIR",
                        help="a checkout whose checker is timed too, alternating")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, run_dir = args.child
        if kind == "peer":
            result = _child_peer(Path(run_dir))
        else:
            result = _child_checker(Path(run_dir), kind.partition("=")[2] or None)
        sys.stdout.buffer.write(orjson.dumps(result))
        return
    print(f"machine: {os.cpu_count()} cpus, load average before {os.getloadavg()}")
    print("| events | MB | checker median s | events/s | ×time vs 10× fewer | CPU s "
          "| peak RSS MB | peer (pure Python) events/s | load (1 min) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    previous = None
    for size in (int(float(s)) for s in args.sizes.split(",")):
        run_dir, events = _ensure(size, args.seed)
        mb = (run_dir / "history.jsonl").stat().st_size / 1e6
        timeout = 60 + size / 1e4
        runs, base = [], []
        for _ in range(args.repeat):
            if args.baseline:
                base.append(_measure(f"baseline={args.baseline}", run_dir, timeout))
            runs.append(_measure("checker", run_dir, timeout))
        wall = statistics.median(r["wall"] for r in runs)
        cpu = statistics.median(r["cpu"] for r in runs)
        rss = max(r["rss_mb"] for r in runs)
        peer = "-"
        if size <= args.peer_max:
            peers = [_measure("peer", run_dir, timeout) for _ in range(args.repeat)]
            peer = f"{events / statistics.median(p['wall'] for p in peers):,.0f}"
        ratio = f"{wall / previous:.1f}" if previous else "-"
        previous = wall
        print(f"| {events:,} | {mb:,.0f} | {wall:.3f} | {events / wall:,.0f} | {ratio} "
              f"| {cpu:.2f} | {rss:,.0f} | {peer} | {os.getloadavg()[0]:.1f} |", flush=True)
        if base:
            old = statistics.median(r["wall"] for r in base)
            print(f"|   baseline | | {old:.3f} | {events / old:,.0f} | new/old {wall / old:.2f} "
                  f"| {statistics.median(r['cpu'] for r in base):.2f} "
                  f"| {max(r['rss_mb'] for r in base):,.0f} | | |", flush=True)
    print(f"load average after {os.getloadavg()}")


if __name__ == "__main__":
    main()
