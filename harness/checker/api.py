"""The checker as a pure function: (history, store snapshot) -> verdict.

`check` judges two files; `check_run` judges a run directory (reading its
params.json for the history format and the delivery level) and writes
verdict.json and violations.jsonl beside them.
"""

from __future__ import annotations

import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import orjson

from faultlab.harness.checker import classify, lifecycle, loader, metrics, model, verdict
from faultlab.harness.checker.errors import RunDirError
from faultlab.harness.checker.invariants import KINDS
from faultlab.harness.checker.schema import HISTORY_FORMAT
from faultlab.harness.checker.synth import ORDERED_LEVELS

MEMORY_LIMIT = "1400MB"


def _connect(spill: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={
        "memory_limit": MEMORY_LIMIT, "temp_directory": str(spill),
        "preserve_insertion_order": True,
    })
    con.execute("SET enable_progress_bar = false")
    return con


def judge(history: Path, store: Path, level: str | None = None
          ) -> tuple[verdict.Verdict, list[tuple[str, dict[str, Any]]]]:
    """The verdict and every violation (for violations.jsonl)."""
    ordered = level is None or level in ORDERED_LEVELS
    spill = tempfile.TemporaryDirectory(prefix="faultlab-check-")
    con = _connect(Path(spill.name))
    try:
        warnings = _load(con, history, store)
        # rowid of h and store is the line index; every derived table orders explicitly.
        con.execute("SET preserve_insertion_order = false")
        warnings += model.build(con, history)
        if level is None:
            warnings.append("level unknown: sender order checked as if promised")
        with ThreadPoolExecutor(max_workers=1) as pool:
            counted = pool.submit(model.on_cursor, con.cursor(), metrics.counts)
            classify.classify(con, ordered)
            events, faults = lifecycle.lifecycles(con, history)
            found = verdict.violations(con, events, faults)
            figures = metrics.metrics(con, KINDS.index("never_delivered"), counted.result())
    finally:
        _close_behind(con, spill)
    return verdict.assemble(found, figures, warnings), found


def _load(con: duckdb.DuckDBPyConnection, history: Path, store: Path) -> list[str]:
    """Tables `h` and `store`, read side by side (the store on a second cursor); a bad
    history is reported before a bad store, as if they were read one after the other."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        stored = pool.submit(model.on_cursor, con.cursor(), loader.load_store, store)
        try:
            warnings = loader.load_history(con, history)
        except BaseException:
            stored.exception()  # let it finish before the connection goes
            raise
        return warnings + stored.result()


def _close_behind(con: duckdb.DuckDBPyConnection, spill: tempfile.TemporaryDirectory[str]
                  ) -> None:
    """Free the database and its spill folder on a thread of their own: the verdict
    does not wait for DuckDB to hand back a few hundred MB (~70 ms at 10^6 events).
    Not a daemon, so the process still waits for it before exiting."""
    def close() -> None:
        try:
            con.close()
        finally:
            spill.cleanup()

    threading.Thread(target=close, name="faultlab-checker-close").start()


def check(history: Path, store: Path, level: str | None = None) -> verdict.Verdict:
    """Judge a history and a store snapshot; writes nothing."""
    return judge(Path(history), Path(store), level)[0]


def read_params(run_dir: Path) -> dict[str, Any]:
    """params.json if present; refuses a history format this checker does not read."""
    path = run_dir / "params.json"
    if not path.exists():
        return {}
    try:
        params = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise RunDirError(path, None, f"not valid JSON ({exc})") from None
    if not isinstance(params, dict):
        raise RunDirError(path, None, "not a JSON object")
    fmt = params.get("history_format", HISTORY_FORMAT)
    if fmt != HISTORY_FORMAT:
        raise RunDirError(
            path, None, f"history_format {fmt!r} is not supported (this checker reads "
            f"format {HISTORY_FORMAT})"
        )
    return params


def check_run(run_dir: Path) -> verdict.Verdict:
    """Judge a run directory and write verdict.json and violations.jsonl into it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunDirError(run_dir, None, "not a run directory")
    params = read_params(run_dir)
    level = params.get("level")
    result, found = judge(run_dir / "history.jsonl", run_dir / "store.jsonl",
                          level if isinstance(level, str) else None)
    verdict.write(run_dir, result, found)
    return result
