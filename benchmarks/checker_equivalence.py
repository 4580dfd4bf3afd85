"""Do two checkers give the same verdicts? The guard for any checker speed-up.

Judges every run directory with this checkout's checker and with the one in
`--baseline DIR`. Each side works on its own copy. It compares `verdict.json`,
`violations.jsonl` and, for a run the checker refuses, the error message, byte for
byte (the copy's path masked). Besides the run directories given, it judges runs it
generates with `faultlab.harness.checker.synth`: several specs (every level, rows from
before the run, refreshes from zero, leaves, frequent faults, retries, redeliveries),
each clean, with every planted defect (two seeds), with six defects at once, and
without its `quiesce_end`; and runs it must refuse. Exits 1 when any output differs.

    git worktree add /tmp/checker-old <commit>
    .venv/bin/python benchmarks/checker_equivalence.py --baseline /tmp/checker-old \\
        faultlab-report/runs/* /tmp/faultlab-bench-checker/events-100000-seed-1
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from checker_throughput import use_checker_of  # this script's sibling

OUTPUTS = ("verdict.json", "violations.jsonl", "error.txt")
SPECS = (
    {"seed": 1, "messages": 300},
    {"seed": 2, "messages": 400, "level": "at-most-once", "refresh": 0.02, "leave": 0.01},
    {"seed": 3, "messages": 300, "pre_rows": 20, "level": "at-least-once", "fault_every": 10,
     "retry": 0.2, "redeliver": 0.6},
    {"seed": 4, "messages": 500, "refresh": 0.03, "refresh_from_zero": 0.7, "level": "unknown"},
    {"seed": 5, "messages": 2000, "refresh": 0.01, "leave": 0.005},
)


def generated(root: Path) -> list[Path]:
    """Clean and broken runs from the synthesiser (see the module docstring)."""
    from faultlab.harness.checker.synth import DEFECTS, Spec, generate, plant, write_run

    runs = []
    for i, fields in enumerate(SPECS):
        spec = Spec(**fields)  # type: ignore[arg-type]
        events, rows = generate(spec)
        params = {"level": spec.level} if spec.level != "unknown" else {}
        variants: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]] = [
            ("clean", events, rows)]
        for defect in DEFECTS:
            for seed in (1, 2):
                if (p := plant(defect, events, rows, seed)) is not None:
                    variants.append((f"{defect}-{seed}", p[0], p[1]))
        for m in range(3):
            ev, rw, rng = events, rows, random.Random(m)
            for _ in range(6):
                if (p := plant(rng.choice(list(DEFECTS)), ev, rw, rng.randrange(1000))):
                    ev, rw = p[0], p[1]
            variants.append((f"multi{m}", ev, rw))
        variants.append(("no-quiesce", [e for e in events if e["op"] != "quiesce_end"], rows))
        if i == 0:
            variants += refused(events, rows)
        for name, ev, rw in variants:
            runs.append(write_run(root / f"spec{i}-{name}", ev, rw, params))
    return runs


def refused(events: list[dict[str, Any]], rows: list[dict[str, Any]]
            ) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]]]]:
    """Runs a checker must refuse, naming the line (contradicting sends, a fate of a
    msg never sent, a malformed line, a duplicated store id), and an empty history,
    which it judges with a warning."""
    send = next(e for e in events if e["op"] == "send")
    recv = next(e for e in events if e["op"] == "recv")
    return [
        ("second-send-same-content", [*events, {**send, "msg": "again"}], rows),
        ("second-send-same-msg", [*events, {**send, "content": "other"}], rows),
        ("fate-of-unsent-msg", [*events, {"t": 0, "actor": "c0", "op": "ack", "msg": "nope"}],
         rows),
        ("malformed-line", [*events, {k: v for k, v in recv.items() if k != "content"}], rows),
        ("duplicated-store-id", events, [*rows, rows[-1]]),
        ("empty-history", [], rows),
    ]


def judge_all(tree: str | None, dirs: list[str]) -> None:
    """In a child: judge each directory with the checker of `tree` (this checkout if
    None); a refused run's message goes to error.txt."""
    use_checker_of(tree)
    from faultlab.harness.checker import check_run
    from faultlab.harness.checker.errors import RunDirError

    for d in dirs:
        try:
            check_run(Path(d))
        except RunDirError as exc:
            (Path(d) / "error.txt").write_text(str(exc))


def side(runs: list[Path], root: Path, tree: str | None) -> list[Path]:
    """Copies of the runs' inputs under `root`, judged by the checker of `tree`."""
    copies = []
    for i, run in enumerate(runs):
        copy = root / str(i)
        copy.mkdir(parents=True)
        for f in run.iterdir():
            if f.is_file() and f.name not in OUTPUTS:
                shutil.copy(f, copy / f.name)
        copies.append(copy)
    for k in range(0, len(copies), 50):  # one child per 50 runs: imports paid once
        subprocess.run([sys.executable, __file__, "--child", tree or "",
                        *map(str, copies[k:k + 50])], check=True)
    return copies


def output(copy: Path, name: str) -> bytes | None:
    path = copy / name
    return path.read_bytes().replace(str(copy).encode(), b"RUN") if path.exists() else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories to judge too")
    parser.add_argument("--baseline", required=False, metavar="DIR",
                        help="the other checkout whose checker is compared")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        judge_all(args.child[0] or None, args.child[1:])
        return 0
    if not args.baseline:
        parser.error("--baseline DIR is required")
    if not (Path(args.baseline) / "harness" / "checker").is_dir():
        parser.error(f"{args.baseline} is not a faultlab checkout (no harness/checker)")
    with tempfile.TemporaryDirectory(prefix="faultlab-equivalence-") as tmp:
        root = Path(tmp)
        runs = [*args.runs, *generated(root / "generated")]
        new = side(runs, root / "new", None)
        old = side(runs, root / "old", args.baseline)
        differ = [(run, name) for run, a, b in zip(runs, old, new, strict=True)
                  for name in OUTPUTS if output(a, name) != output(b, name)]
        refused = sum((c / "error.txt").exists() for c in new)
        violating = sum((c / "violations.jsonl").exists()
                        and (c / "violations.jsonl").stat().st_size > 0 for c in new)
        for run, name in differ:
            print(f"DIFFERS: {run} {name}")
        print(f"{len(runs)} runs ({violating} with violations, {refused} refused): "
              f"{len(differ)} differences")
        return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
