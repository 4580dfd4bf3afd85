"""No false alarm: run the whole suite N times and its most timing-sensitive scenarios
M times, and count failures (there must be none against the correct levels).

    .venv/bin/python scripts/no_false_alarms.py --suite-runs 10 --sensitive-runs 200

Each pass is one pytest process (JUnit XML parsed for the counts); the sensitive
scenarios are repeated inside one session (a small plugin repeats the collected
items), so the cost is the scenarios themselves, not interpreter start-up. Every
pytest run is bounded by `--max-seconds` (its process group is killed past it) and
the script exits non-zero when any scenario failed or a pass was cut short.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Scenarios whose verdict depends most on timing: a fault that must meet a send in
# flight, a pause racing the ping timeout, an ack racing its timeout, a lock helper
# racing the workload, every client recovering in time.
SENSITIVE = [
    "scenarios/test_client.py::test_abrupt_close_mid_traffic",
    "scenarios/test_recovery.py::test_retries_after_a_reconnect",
    "scenarios/test_recovery.py::test_dropped_transport_is_recovered[memory]",
    "scenarios/test_server.py::test_pause_longer_than_the_ping_timeout",
    "scenarios/test_matrix.py::test_guarantee_matrix[exactly-once-crash_before_insert]",
    "scenarios/test_matrix.py::test_guarantee_matrix[at-least-once-ack_lost]",
    "scenarios/test_store.py::test_write_lock_past_the_busy_timeout[at-most-once-must1]",
]


# Repeats each selected test as fresh parametrized items (`...-rep3]`), so every
# repetition has its own fixtures and its own seed (derived from the test id).
REPEAT_PLUGIN = """
import os
import re

import pytest

ONLY = set(os.environ["FAULTLAB_ONLY"].split())


def base_id(nodeid):
    # the test id without the repetition: t[rep1] -> t, t[rep1-a] -> t[a]
    nodeid = re.sub(r"\\[rep\\d+\\]$", "", nodeid)
    return re.sub(r"(?<=[\\[-])rep\\d+-|-rep\\d+(?=\\])", "", nodeid)


@pytest.fixture
def faultlab_repeat(request):
    return request.param


def pytest_generate_tests(metafunc):
    metafunc.fixturenames.append("faultlab_repeat")
    metafunc.parametrize("faultlab_repeat", range(int(os.environ["FAULTLAB_REPEAT"])),
                         indirect=True, ids=lambda i: f"rep{i}")


def pytest_collection_modifyitems(session, config, items):
    items[:] = [item for item in items if base_id(item.nodeid) in ONLY]
"""


def run_pytest(args: list[str], xml: Path, max_seconds: float,
               repeat: int = 0) -> tuple[int | None, float]:
    """One bounded pytest process; returns (exit code or None when cut short, seconds)."""
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            f"--junitxml={xml}", *args]
    env = dict(os.environ)
    if repeat:
        plugin_dir = xml.parent / "plugin"
        plugin_dir.mkdir(exist_ok=True)
        (plugin_dir / "faultlab_repeat.py").write_text(REPEAT_PLUGIN)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir),
                                                          env.get("PYTHONPATH")]))
        env["FAULTLAB_REPEAT"] = str(repeat)
        env["FAULTLAB_ONLY"] = " ".join(SENSITIVE)
        argv[3:3] = ["-p", "faultlab_repeat"]
        argv += sorted({nodeid.split("::")[0] for nodeid in SENSITIVE})
    start = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, start_new_session=True, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        code: int | None = proc.wait(timeout=max_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        code = None
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return code, time.monotonic() - start


def base_id(test_id: str) -> str:
    """A repeated test's id without its repetition (the plugin's rule, for the counts)."""
    test_id = re.sub(r"\[rep\d+\]$", "", test_id)
    return re.sub(r"(?<=[\[-])rep\d+-|-rep\d+(?=\])", "", test_id)


def outcomes(xml: Path) -> collections.Counter[tuple[str, str]]:
    """(test id, passed|failed|skipped) counts from a JUnit XML file."""
    counts: collections.Counter[tuple[str, str]] = collections.Counter()
    if not xml.is_file():
        return counts
    for case in ET.parse(xml).getroot().iter("testcase"):
        name = base_id(f"{case.get('classname', '')}::{case.get('name', '')}")
        if case.find("failure") is not None or case.find("error") is not None:
            counts[(name, "failed")] += 1
        elif case.find("skipped") is not None:
            counts[(name, "skipped")] += 1
        else:
            counts[(name, "passed")] += 1
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-runs", type=int, default=10, help="whole-suite passes (N)")
    parser.add_argument("--sensitive-runs", type=int, default=200,
                        help="repetitions of each timing-sensitive scenario (M)")
    parser.add_argument("--batch", type=int, default=25,
                        help="sensitive repetitions per pytest process")
    parser.add_argument("--max-seconds", type=float, default=1800.0,
                        help="bound on one pytest process")
    parser.add_argument("--workers", default="0", help="pytest-xdist -n value (0 = serial)")
    opts = parser.parse_args()
    xdist = ["-n", opts.workers] if opts.workers != "0" else []
    total: collections.Counter[tuple[str, str]] = collections.Counter()
    cut_short = 0
    with tempfile.TemporaryDirectory(prefix="faultlab-nfa-") as tmp:
        for i in range(opts.suite_runs):
            xml = Path(tmp) / f"suite-{i}.xml"
            code, took = run_pytest(["scenarios/", *xdist], xml, opts.max_seconds)
            got = outcomes(xml)
            total += got
            cut_short += code is None
            failed = sum(n for (_, what), n in got.items() if what == "failed")
            print(f"suite pass {i + 1}/{opts.suite_runs}: exit {code}, {took:.0f}s, "
                  f"{failed} failed", flush=True)
        done = 0
        while done < opts.sensitive_runs:
            batch = min(opts.batch, opts.sensitive_runs - done)
            xml = Path(tmp) / f"sensitive-{done}.xml"
            code, took = run_pytest(xdist, xml, opts.max_seconds, batch)
            got = outcomes(xml)
            total += got
            cut_short += code is None
            done += batch
            failed = sum(n for (_, what), n in got.items() if what == "failed")
            print(f"sensitive {done}/{opts.sensitive_runs}: exit {code}, {took:.0f}s, "
                  f"{failed} failed", flush=True)
    names = sorted({name for name, _ in total})
    print(f"\n{'scenario':100} passed failed")
    for name in names:
        print(f"{name:100} {total[(name, 'passed')]:6} {total[(name, 'failed')]:6}")
    failed = sum(n for (_, what), n in total.items() if what == "failed")
    runs = sum(n for (_, what), n in total.items() if what in ("passed", "failed"))
    print(f"\n{runs} scenario runs, {failed} failed, {cut_short} pytest pass(es) cut short")
    return 1 if failed or cut_short else 0


if __name__ == "__main__":
    sys.exit(main())
