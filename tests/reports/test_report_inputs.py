"""Bad or odd run directories: a precise message, never a crash or a silent skip."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from faultlab.reports.results import build
from faultlab.reports.rundir import RunDirError, discover, load
from faultlab.reports.scan import scan


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_truncated_last_line_is_tolerated_and_reported(clean_run, tmp_path):
    run = _copy(clean_run, tmp_path / "run")
    full = scan(run / "history.jsonl")
    with (run / "history.jsonl").open("ab") as fh:
        fh.write(b'{"t": 99.0, "actor": "c1", "op": "sh')
    sc = scan(run / "history.jsonl")
    assert sc.truncated_last_line
    assert sc.events == full.events
    n = len((run / "history.jsonl").read_bytes().split(b"\n"))
    assert sc.warnings == [f"line {n}: truncated last line ignored"]


def test_unknown_op_and_malformed_lines_are_named_by_line(clean_run, tmp_path):
    run = _copy(clean_run, tmp_path / "run")
    lines = (run / "history.jsonl").read_bytes().split(b"\n")
    lines.insert(5, b'{"t": 0.05, "actor": "c1", "op": "teleport"}')
    lines.insert(7, b'{"t": 0.05, "actor": "c1", "op": "show"}')
    lines.insert(9, b"not json at all")
    (run / "history.jsonl").write_bytes(b"\n".join(lines))
    sc = scan(run / "history.jsonl")
    assert sc.warnings[0] == "line 6: unknown op 'teleport', skipped"
    assert sc.warnings[1].startswith("line 8: malformed event (KeyError")
    assert sc.warnings[2] == "line 10: not valid JSON, skipped"
    assert not sc.truncated_last_line
    doc = build([run])
    assert doc["runs"][0]["history"]["warning_count"] == 3


def test_a_fault_never_healed_ends_with_the_history(clean_run, tmp_path):
    run = _copy(clean_run, tmp_path / "run")
    kept = [ln for ln in (run / "history.jsonl").read_bytes().split(b"\n")
            if b'"fault_end"' not in ln or b'"f2"' not in ln]
    (run / "history.jsonl").write_bytes(b"\n".join(kept))
    faults = build([run])["runs"][0]["faults"]
    assert [f["healed"] for f in faults] == [True, False]
    assert faults[1]["end"] == build([run])["runs"][0]["history"]["duration"]


@pytest.mark.parametrize(("name", "message"), [
    ("verdict.json", "verdict.json is missing"),
    ("history.jsonl", "history.jsonl is missing"),
])
def test_a_missing_file_is_named(clean_run, tmp_path, name, message):
    run = _copy(clean_run, tmp_path / "run")
    (run / name).unlink()
    with pytest.raises(RunDirError, match=message):
        load(run)


def test_an_unreadable_run_fails_the_report_but_the_others_render(clean_run, tmp_path):
    bad = _copy(clean_run, tmp_path / "bad")
    (bad / "verdict.json").write_text("{not json")
    doc = build([clean_run, bad])
    assert doc["outcome"] == "fail"
    assert doc["totals"]["runs"] == 1
    assert doc["unreadable"][0]["dir"] == str(bad)
    assert "verdict.json: not valid JSON" in doc["unreadable"][0]["error"]


def test_a_newer_history_format_is_refused_by_name(clean_run, tmp_path):
    run = _copy(clean_run, tmp_path / "run")
    params = orjson.loads((run / "params.json").read_bytes())
    (run / "params.json").write_bytes(orjson.dumps({**params, "history_format": 2}))
    with pytest.raises(RunDirError, match="history_format 2 is not supported"):
        load(run)


def test_folders_holding_run_directories_are_expanded(clean_run, violations_run, tmp_path):
    parent = tmp_path / "suite"
    _copy(clean_run, parent / "a" / "clean")
    _copy(violations_run, parent / "b")
    assert discover([parent]) == [parent / "a" / "clean", parent / "b"]
    with pytest.raises(RunDirError, match="no run directory here"):
        discover([tmp_path / "suite" / "a" / "clean" / "logs"])


def test_an_empty_run_still_renders(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "params.json").write_text('{"level": "exactly-once", "history_format": 1}')
    (run / "history.jsonl").write_text("")
    (run / "store.jsonl").write_text("")
    (run / "verdict.json").write_text('{"valid": true, "violations": {}, "metrics": {}}')
    doc = build([run])
    (r,) = doc["runs"]
    assert (r["outcome"], r["fault_kind"], r["history"]["events"]) == ("pass", "none", 0)
    assert doc["matrix"]["cells"][0]["state"] == "clean"
