"""Time to find and shrink a planted bug from fresh seeds, and the warm cluster's saving.

For each fresh seed: Hypothesis explores random schedules against the reference
server with a mutation (default `no_dedupe`), shrinks the first failing schedule,
confirms the minimal one, and the printed `faultlab run` replay command is run on a
cold cluster to check that it reproduces. Reported: seconds to the first failure,
seconds to the confirmed minimal schedule, examples, minimal size (medians over
seeds). Then the same few schedules are run on the warm cluster and cold (one
cluster per run, `run_scenario`) to measure what keeping the cluster up saves.

    .venv/bin/python benchmarks/find_and_shrink.py --seeds 5
    .venv/bin/python benchmarks/find_and_shrink.py --seed 1234 --seed 99   # chosen seeds
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from faultlab.harness.explore import ExploreConfig, WarmCluster, describe, explore, run_seed
from faultlab.harness.run import run_scenario
from faultlab.harness.schedule import parse_schedule

COST_SCHEDULES = [
    [],
    [{"at": 0.3, "duration": 0.4, "kind": "partition", "target": "group:0"}],
    [{"at": 0.2, "duration": 0.3, "kind": "kill"}],
    [{"at": 0.5, "kind": "drop_transport", "target": "all"},
     {"at": 0.4, "duration": 0.5, "kind": "latency", "params": {"latency": 50}}],
]


def replay(argv: list[str], out: Path) -> int:
    """Run the printed replay command; the count of the mutation's violation kind."""
    proc = subprocess.run([sys.executable, "-m", "faultlab", *argv[1:], "--out", str(out)],
                          capture_output=True, text=True, timeout=180)
    if proc.returncode != 0:
        raise RuntimeError(f"replay failed: {proc.stderr[-1000:]}")
    verdict = orjson.loads((out / "verdict.json").read_bytes())
    return sum(v["count"] for v in verdict["violations"].values())


async def find_and_shrink(seed: int, mutation: str, work: Path) -> dict[str, Any]:
    config = ExploreConfig(mutation=mutation, seed=seed, examples=60, shrink_budget=120.0)
    started = time.monotonic()
    result = await explore(config, work / f"seed-{seed}")
    total = time.monotonic() - started  # cluster start and stop included
    print(describe(result), flush=True)
    row: dict[str, Any] = {
        "seed": seed, "found": result.failed, "found_after": result.found_after,
        "found_at_example": result.found_at_example, "total": total,
        "examples": result.examples, "runs": result.runs,
        "first_size": len(result.first_failure.schedule) if result.first_failure else None,
        "minimal_size": len(result.minimal.schedule) if result.minimal else None,
        "unconfirmed": len(result.unconfirmed),
    }
    if result.minimal is not None:
        row["replay_violations"] = await asyncio.to_thread(
            replay, result.replay_argv(), work / f"replay-{seed}")
        row["minimal"] = [f.kind for f in result.minimal.schedule]
    return row


async def example_cost(work: Path, repeats: int) -> dict[str, list[float]]:
    """Seconds per example: the warm cluster vs one cold cluster per run."""
    config = ExploreConfig(seed=7)
    warm_times: list[float] = []
    cold_times: list[float] = []
    async with WarmCluster(config, work / "warm") as warm:
        for _ in range(repeats):
            for entries in COST_SCHEDULES:
                t = time.monotonic()
                example = await warm.run(parse_schedule(entries))
                warm_times.append(time.monotonic() - t)
                assert example.valid is True, example
    for i in range(repeats):
        for j, entries in enumerate(COST_SCHEDULES):
            params = warm.params(parse_schedule(entries), run_seed(7, i * 10 + j),
                                 work / "cold" / f"{i}-{j}")
            t = time.monotonic()
            await run_scenario(params)
            cold_times.append(time.monotonic() - t)
    return {"warm": warm_times, "cold": cold_times}


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="how many fresh seeds")
    parser.add_argument("--seed", type=int, action="append", default=[],
                        help="a chosen seed instead of fresh ones (repeatable)")
    parser.add_argument("--mutation", default="no_dedupe")
    parser.add_argument("--cost-repeats", type=int, default=2,
                        help="repeats of the warm-vs-cold schedules (0 to skip)")
    args = parser.parse_args()
    seeds = args.seed or [int.from_bytes(os.urandom(3)) for _ in range(args.seeds)]
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; seeds {seeds}")
    with tempfile.TemporaryDirectory(prefix="faultlab-find-") as tmp:
        work = Path(tmp)
        rows = [await find_and_shrink(seed, args.mutation, work) for seed in seeds]
        cost = await example_cost(work, args.cost_repeats) if args.cost_repeats else {}
    print("\nseed     found  first(s)  total(s)  examples  runs  first->minimal  replay")
    for r in rows:
        print(f"{r['seed']:<8} {r['found']!s:<6} {r['found_after'] or 0:8.1f}  {r['total']:8.1f}"
              f"  {r['examples']:8}  {r['runs']:4}  {r['first_size']}->{r['minimal_size']} "
              f"{r.get('minimal')}  {r.get('replay_violations')}")
    found = [r for r in rows if r["found"]]
    print(f"\nfound and shrunk: {len(found)}/{len(rows)}; median seconds to first failure "
          f"{median([r['found_after'] for r in found]):.1f}, to the confirmed minimal schedule "
          f"(cluster start/stop included) {median([r['total'] for r in found]):.1f}; "
          f"max {max((r['total'] for r in found), default=float('nan')):.1f}")
    if cost:
        warm, cold = median(cost["warm"]), median(cost["cold"])
        print(f"per example: warm cluster median {warm:.2f}s, cold cluster median {cold:.2f}s, "
              f"cold/warm {cold / warm:.2f}x (n={len(cost['warm'])} each)")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    asyncio.run(main())
