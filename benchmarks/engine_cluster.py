"""Engine figures: what a scenario pays before and around its workload.

1. cluster bring-up and teardown (store + server + embedded proxy + G group proxies),
   for the reference server and the Node peer in the same run;
2. fault latency: from the nemesis starting a fault to the effect (partition: the
   proxy reports disabled; kill: the server restarted and healthy again on the same
   port) and from heal_all to healed.

Medians over `--repeat` rounds.

    .venv/bin/python benchmarks/engine_cluster.py --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import psutil

from faultlab.harness.cluster import Cluster
from faultlab.harness.history import History
from faultlab.harness.nemesis import Nemesis
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.schedule import parse_schedule
from faultlab.harness.targets import load_target


async def bring_up(target: str, groups: int, work: Path) -> tuple[float, float]:
    run = create_run_dir(Path(tempfile.mkdtemp(dir=work)))
    t0 = time.perf_counter()
    cluster = Cluster(run, load_target(target), "exactly-once", groups=groups)
    await cluster.__aenter__()
    up = time.perf_counter() - t0
    t1 = time.perf_counter()
    await cluster.close()
    return up, time.perf_counter() - t1


async def fault_latency(kind: str, work: Path) -> tuple[float, float]:
    run = create_run_dir(Path(tempfile.mkdtemp(dir=work)))
    async with History(run.history) as history, \
            Cluster(run, load_target(), "exactly-once", groups=2) as cluster:
        schedule = parse_schedule([{"at": 0, "duration": 60, "kind": kind,
                                    "target": "group:0" if kind == "partition" else "server"}])
        nemesis = Nemesis(cluster, [], history, schedule)
        t0 = time.perf_counter()
        nemesis.start()
        while "f1" not in nemesis.active:
            await asyncio.sleep(0.001)
        applied = time.perf_counter() - t0
        t1 = time.perf_counter()
        await nemesis.heal_all()
        if kind == "kill":
            await cluster.health()
        healed = time.perf_counter() - t1
        return applied, healed


def med(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms"


async def main(repeat: int, groups: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="faultlab-bench-engine-"))
    try:
        print(f"machine: {platform.machine()} {platform.system()}, "
              f"{psutil.cpu_count()} CPUs, load {psutil.getloadavg()[0]:.1f}")
        targets = ["reference"] + (["node-peer"] if shutil.which("node") else [])
        for target in targets:
            ups, downs = [], []
            for _ in range(repeat):
                up, down = await bring_up(target, groups, work)
                ups.append(up)
                downs.append(down)
            print(f"{target:<10} bring-up ({groups} groups): median {med(ups)}, "
                  f"teardown median {med(downs)}")
        for kind in ("partition", "kill", "pause"):
            applied, healed = [], []
            for _ in range(repeat):
                a, h = await fault_latency(kind, work)
                applied.append(a)
                healed.append(h)
            print(f"{kind:<10} applied in median {med(applied)}, healed in median {med(healed)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--groups", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.repeat, args.groups))
