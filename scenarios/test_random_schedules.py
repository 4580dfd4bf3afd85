"""Random fault schedules (Hypothesis) against exactly-once with the strict receive policy.

Hypothesis draws schedules of up to three overlapping sub-second faults (kinds,
targets, start times, durations) from what exactly-once must survive; each example
runs on one warm cluster. Against the reference server no schedule may break "no
loss, no duplicates"; against a planted bug the search must find a failing schedule,
shrink it to at most two faults, and print a scenario and a replay command that
really reproduce it.

CI runs a few examples with a fixed seed. Raise them with
``FAULTLAB_RANDOM_EXAMPLES=200``; change the seed with ``--faultlab-seed N`` (or
``FAULTLAB_RANDOM_SEED=N``). The same seed explores the same schedules.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import orjson
import pytest

from faultlab.harness.explore import Exploration, ExploreConfig, describe, explore

pytestmark = [pytest.mark.random, pytest.mark.exactly_once]

EXAMPLES = int(os.environ.get("FAULTLAB_RANDOM_EXAMPLES", "4"))
REPLAY_TRIES = 2  # a cold cluster's timing differs a little from the warm one's


def seed_for(request: pytest.FixtureRequest, default: int) -> int:
    option = request.config.getoption("--faultlab-seed")
    if option is not None:
        return int(option)
    return int(os.environ.get("FAULTLAB_RANDOM_SEED", default))


def report(result: Exploration, tmp_path: Path) -> str:
    """The summary, also kept next to the run directories (and printed with -s)."""
    text = describe(result)
    (tmp_path / "explore" / "summary.txt").write_text(text + "\n")
    print(text)
    return text


async def test_random_schedules_never_break_exactly_once(request: pytest.FixtureRequest,
                                                         tmp_path: Path) -> None:
    config = ExploreConfig(examples=EXAMPLES, seed=seed_for(request, 1))
    result = await explore(config, tmp_path / "explore")
    summary = report(result, tmp_path)
    # A correct server never loses or duplicates, not even once (confirmed or not).
    assert result.first_failure is None and not result.unconfirmed, summary
    assert not result.inconclusive, summary
    assert result.examples >= min(EXAMPLES, 2), summary


async def replay(argv: list[str], out: Path) -> dict[str, object]:
    """Run the printed `faultlab run ...` command as a user would; return its verdict."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "faultlab", *argv[1:], "--out", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode()[-2000:]
    return orjson.loads((out / "verdict.json").read_bytes())


@pytest.mark.mutation
async def test_a_planted_bug_is_found_shrunk_and_replayed(request: pytest.FixtureRequest,
                                                          tmp_path: Path) -> None:
    """no_dedupe stores a retried message again: only a fault that makes a client retry
    (a lost or late ack) shows it, so the search has to find one."""
    # Shrinking stops at the first one-fault failure: the proof is "found, shrunk, confirmed,
    # replayed", and polishing its start time and duration further is not part of it.
    config = ExploreConfig(mutation="no_dedupe", examples=30, seed=seed_for(request, 2),
                           shrink_budget=60.0, shrink_to_faults=1)
    result = await explore(config, tmp_path / "explore")
    summary = report(result, tmp_path)
    assert result.minimal is not None, summary
    assert 1 <= len(result.minimal.schedule) <= 2, summary
    assert result.minimal.counts.get("duplicated_stored", 0) > 0, summary
    verdicts = []
    for attempt in range(REPLAY_TRIES):
        verdict = await replay(result.replay_argv(), tmp_path / f"replay-{attempt}")
        verdicts.append(verdict["violations"]["duplicated_stored"]["count"])  # type: ignore[index]
        if verdicts[-1]:
            break
    assert verdicts[-1] > 0, f"the replay command did not reproduce it {verdicts}\n{summary}"
