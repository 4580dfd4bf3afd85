"""What `shrink_to_faults` saves: the planted-bug exploration with and without it.

The scenario `test_a_planted_bug_is_found_shrunk_and_replayed` explores `no_dedupe`
with seed 2; this runs that exploration both ways, alternating which goes first in
each round (so a change of machine load hits both), and prints the seconds, the
schedules tried and the cluster runs of each, with medians and their ratio.

    .venv/bin/python benchmarks/shrink_cost.py --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from faultlab.harness.explore import ExploreConfig, explore


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--stop-at", type=int, default=1, help="shrink_to_faults to compare")
    args = parser.parse_args()
    base = ExploreConfig(mutation="no_dedupe", examples=30, seed=args.seed, shrink_budget=60.0)
    seconds: dict[int, list[float]] = {0: [], args.stop_at: []}
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="faultlab-shrink-") as tmp:
        for rnd in range(args.rounds):
            order = (0, args.stop_at) if rnd % 2 == 0 else (args.stop_at, 0)
            for stop in order:
                t = time.monotonic()
                result = await explore(replace(base, shrink_to_faults=stop),
                                       Path(tmp) / f"{rnd}-{stop}")
                took = time.monotonic() - t
                seconds[stop].append(took)
                size = len(result.minimal.schedule) if result.minimal else None
                print(f"round {rnd} shrink_to_faults={stop}: {took:.1f}s, {result.examples} "
                      f"schedules, {result.runs} runs, minimal {size} fault(s), first failure "
                      f"after {result.found_after or 0:.1f}s, load {os.getloadavg()[0]:.1f}",
                      flush=True)
    full, short = statistics.median(seconds[0]), statistics.median(seconds[args.stop_at])
    print(f"median: shrink_to_faults=0 {full:.1f}s, ={args.stop_at} {short:.1f}s, "
          f"ratio {short / full:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
