"""What unarmed failpoints cost the reference server per acked message.

The points stay in the hot path (issue 3: under 1 % unarmed). A server built
without them does not exist to compare against, so this measures the cost of
one unarmed `await Failpoints.hit(name)` against awaiting an empty coroutine
(the cheapest thing the call could be replaced by), and relates it to the
server's CPU time per acked message from benchmarks/server_bench.py.

    .venv/bin/python benchmarks/server_failpoints.py --cpu-per-ack-us 250

Each acked message passes three points (before_insert, after_commit,
before_broadcast); during_sync is passed once per connection, not per message.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from faultlab.server.failpoints import Failpoints

HITS_PER_MESSAGE = 3


async def _empty() -> None:
    return None


async def per_call_ns(n: int, failpoints: Failpoints | None) -> float:
    """One timed pass; the caller repeats it and takes the median."""
    start = time.perf_counter_ns()
    if failpoints is None:
        for _ in range(n):
            await _empty()
    else:
        for _ in range(n):
            await failpoints.hit("after_commit")
    return (time.perf_counter_ns() - start) / n


async def main(args: argparse.Namespace) -> None:
    failpoints = Failpoints()
    failpoints.arm("during_sync", "delay", ms=1)  # armed elsewhere: a realistic dict, not empty
    hit = [await per_call_ns(args.n, failpoints) for _ in range(args.repeat)]
    empty = [await per_call_ns(args.n, None) for _ in range(args.repeat)]
    hit_ns, empty_ns = statistics.median(hit), statistics.median(empty)
    extra_ns = max(0.0, hit_ns - empty_ns)
    print(
        f"unarmed hit: {hit_ns:.0f} ns; empty await: {empty_ns:.0f} ns; "
        f"extra over the empty await: {extra_ns:.0f} ns (medians of {args.repeat} x {args.n:,})"
    )
    per_message_us = HITS_PER_MESSAGE * hit_ns / 1000
    print(f"per acked message ({HITS_PER_MESSAGE} points): {per_message_us:.2f} µs in all")
    if args.cpu_per_ack_us:
        share = 100 * per_message_us / args.cpu_per_ack_us
        print(
            f"= {share:.2f} % of {args.cpu_per_ack_us:g} µs server CPU per acked message "
            "(an upper bound: the whole call, not just its excess over no call)"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument(
        "--cpu-per-ack-us",
        type=float,
        help="the server's CPU µs per acked message, from server_bench.py",
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
