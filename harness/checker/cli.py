"""`faultlab check RUN_DIR… [--json]`: re-judge saved runs.

Exit status: 0 all valid, 1 any invalid, 3 any unknown (and none invalid), 2 a run
directory unreadable (the message names the file and line). Each run directory gets
a fresh verdict.json and violations.jsonl.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from faultlab.harness.checker.api import check_run
from faultlab.harness.checker.errors import RunDirError

EXIT = {True: 0, False: 1, "unknown": 3}
UNREADABLE = 2


def summary(run_dir: Path, verdict: dict[str, Any]) -> str:
    """A few lines a person reads: the outcome, what broke, the key figures."""
    valid = verdict["valid"]
    word = {True: "VALID", False: "INVALID", "unknown": "UNKNOWN"}[valid]
    m = verdict["metrics"]
    lines = [
        f"{run_dir}: {word} — {m['sends']} sends, {m['acks']} acks, {m['shows']} shows, "
        f"{m['clients']} clients, {m['faults']} faults"
    ]
    for kind, slot in verdict["violations"].items():
        if slot["count"]:
            first = slot["messages"][0]
            where = f" at {', '.join(first['clients'])}" if first["clients"] else ""
            lines.append(
                f"  {kind}: {slot['count']} (first: {first['msg'] or '-'} "
                f"{first['content']!r}{where})"
            )
    stable = m["stable_latency"]
    lines.append(
        f"  ack p99 {m['ack_latency']['p99']} s, stable p99 {stable['p99']} s, "
        f"redelivered {m['redelivered']}, reconnects {m['reconnects']} "
        f"({m['recovered']} recovered)"
    )
    lines.extend(f"  warning: {w}" for w in verdict["warnings"])
    return "\n".join(lines)


@click.command(name="check")
@click.argument("run_dirs", nargs=-1, required=True,
                type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print each verdict as JSON.")
def command(run_dirs: tuple[Path, ...], as_json: bool) -> None:
    """Re-check saved run directories: write verdict.json and violations.jsonl."""
    codes = []
    for run_dir in run_dirs:
        try:
            verdict = check_run(run_dir)
        except RunDirError as exc:
            click.echo(f"faultlab check: {exc}", err=True)
            codes.append(UNREADABLE)
            continue
        codes.append(EXIT[verdict["valid"]])
        if as_json:
            sys.stdout.buffer.write(orjson.dumps(verdict, option=orjson.OPT_INDENT_2) + b"\n")
            sys.stdout.flush()
        else:
            click.echo(summary(run_dir, verdict))
    sys.exit(max(codes, key=lambda c: (c == UNREADABLE, c == 1, c == 3)))
