"""What one sleep and wake-up costs this process in CPU time, on this machine.

The harness's CPU per received message (`harness_clients.py`) has a part per frame and
a part per sent message; the second is mostly the event loop going idle and being
woken (by the pacing timer, the ack, the first frames of a broadcast). On a virtual
machine a wake-up can cost far more CPU than on bare metal, and code run right after
it runs on cold caches. This script measures both, so figures from different
machines can be compared:

1. CPU time per `time.sleep(d)` for a few `d` (the block and the wake-up alone);
2. a fixed piece of Python work (encoding and decoding history-like events) run
   back to back, then right after each sleep: the difference is the cold-cache cost;
3. `asyncio.sleep(d)` on the harness's event loop (`faultlab.loops`);
4. with `--sends N`, a lean sender and one lean receiver on the reference server behind
   the embedded proxy: harness CPU and voluntary context switches per message for N
   messages sent back to back, then N paced at 200 per second (same code, same
   cluster: the difference is the idle wake-ups).

    .venv/bin/python benchmarks/wake_cost.py
    .venv/bin/python benchmarks/wake_cost.py --sends 1000
    .venv/bin/python benchmarks/wake_cost.py --rounds 500 --loop asyncio
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson
from harness_clients import paced, phase_cluster, until  # this script's sibling

from faultlab import loops
from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.lean import LeanClient
from faultlab.harness.history import History

EVENTS = [{"t": i / 1000, "actor": f"c{i % 50}", "op": "recv", "content": f"m{i}",
           "server_offset": i} for i in range(300)]


def work() -> None:
    for event in EVENTS:
        orjson.loads(orjson.dumps(event))


def per_call_us(fn: Callable[[], object], rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - start) / rounds * 1e6


async def loop_sleep_us(seconds: float, rounds: int) -> float:
    start = time.process_time()
    for _ in range(rounds):
        await asyncio.sleep(seconds)
    return (time.process_time() - start) / rounds * 1e6


async def paced_against_burst(sends: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="faultlab-wake-"))
    async with (
        phase_cluster(out, "wake") as cluster,
        History(out / "history.jsonl") as history,
        aiohttp.ClientSession() as http,
    ):
        sender, receiver = (
            LeanClient(ClientConfig(f"c{i}", cluster.client_url(i), "exactly-once"), history,
                       http=http, rng=random.Random(i)) for i in range(2))
        for client in (sender, receiver):
            await client.start()
        await until(lambda: sender.connected and receiver.connected, "connected", 30)
        for rate in (0.0, 200.0):
            before, cpu0 = resource.getrusage(resource.RUSAGE_SELF), time.process_time()
            base = len(receiver.shown())
            async for i in paced(rate, sends):
                await sender.send(f"{rate}:{i}")
            await until(lambda b=base: len(receiver.shown()) >= b + sends, "received", 60)
            cpu, after = time.process_time() - cpu0, resource.getrusage(resource.RUSAGE_SELF)
            how = f"paced at {rate:.0f}/s" if rate else "back to back"
            print(f"{sends} sends {how}: {cpu / sends * 1e6:.0f} µs harness CPU per message, "
                  f"{(after.ru_nvcsw - before.ru_nvcsw) / sends:.1f} sleeps per message")
        for client in (sender, receiver):
            await client.close()


def main(args: argparse.Namespace) -> None:
    for _ in range(50):
        work()
    warm = per_call_us(work, args.rounds)
    print(f"work, back to back: {warm:.1f} µs CPU per call")
    for seconds in (0.0002, 0.001, 0.005):
        alone = per_call_us(lambda s=seconds: time.sleep(s), args.rounds)
        both = per_call_us(lambda s=seconds: (time.sleep(s), work()), args.rounds)
        print(f"time.sleep({seconds}): {alone:.1f} µs CPU per sleep; work right after it "
              f"{both - alone:.1f} µs ({(both - alone) / warm - 1:+.0%} against back to back)")
        print(f"asyncio.sleep({seconds}) on {args.loop}: "
              f"{loops.run(loop_sleep_us(seconds, args.rounds), args.loop):.1f} µs CPU per sleep")
    if args.sends:
        loops.run(paced_against_burst(args.sends), args.loop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--loop", choices=loops.LOOPS, default=loops.DEFAULT_LOOP)
    parser.add_argument("--sends", type=int, default=0,
                        help="also measure N sends paced against back to back (a cluster)")
    main(parser.parse_args())
