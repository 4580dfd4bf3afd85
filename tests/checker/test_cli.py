"""`faultlab check`: exit codes, summaries, and unreadable runs named by file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from faultlab.harness.checker.cli import command


def _clean(run):
    r = run()
    r.message("c1", "m1")
    r.quiesce()
    return r.write()


def _invoke(*args: object):
    return CliRunner().invoke(command, [str(a) for a in args])


def test_valid_exits_0_and_writes_the_verdict(run):
    root = _clean(run)
    result = _invoke(root)
    assert result.exit_code == 0, result.output
    assert "VALID" in result.output
    assert orjson.loads((root / "verdict.json").read_bytes())["valid"] is True
    assert (root / "violations.jsonl").read_bytes() == b""


def test_invalid_exits_1_and_names_the_kind(run):
    r = run()
    r.send("c1", "m1")
    r.quiesce()
    result = _invoke(r.write())
    assert result.exit_code == 1
    assert "INVALID" in result.output and "lost: 1" in result.output


def test_unknown_exits_3(run):
    r = run()
    r.disconnect("c2")
    r.message("c1", "m1")
    r.quiesce(ok=False)
    assert _invoke(r.write()).exit_code == 3


def test_json_prints_the_verdict(run):
    result = _invoke(_clean(run), "--json")
    assert result.exit_code == 0
    assert orjson.loads(result.stdout)["valid"] is True


def test_the_worst_run_decides_the_exit_code(run, tmp_path):
    clean = _clean(run)
    assert _invoke(clean, tmp_path / "nowhere").exit_code == 2
    bad = run()
    bad.send("c1", "m1")
    bad.quiesce()
    assert _invoke(clean, bad.write()).exit_code == 1


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"t": 1.0, "actor": "c1", "op": "teleport"}', "line 3: unknown op 'teleport'"),
        (b'{"t": 1.0, "actor": "c1", "op": "show", "server_offset": 1}',
         "line 3: show needs 'content'"),
        (b'{"t": 1.0, "actor": "c1", "op": "recv", "content": "x", "server_offset": "one"}',
         "line 3: recv 'server_offset' must be int/null"),
        # DuckDB's own error quotes the line cut mid-character: its message is not UTF-8
        (('{"t": 1.0, "actor": "c1", "op": "recv", "content": "x", "server_offset": '
          '{"k": "a' + "é" * 100 + '"}}').encode(),
         "line 3: recv 'server_offset' must be int/null"),
        (b'{"t": 1.0, "actor": "c1", "op": "send"', "line 3: not valid JSON"),
        (b'[1, 2]', "line 3: not a JSON object"),
        (b'{"t": 1.0, "actor": "c1", "op": "ack", "msg": "m404"}', "line 3: refers to a msg"),
    ],
)
def test_a_bad_line_exits_2_naming_file_and_line(tmp_path: Path, line: bytes, expected: str):
    good = [
        b'{"t": 0.0, "actor": "harness", "op": "run_start", "store_max_id": 0}',
        b'{"t": 0.1, "actor": "c1", "op": "session_start", "resume_from": 0}',
    ]
    tail = [b'{"t": 2.0, "actor": "harness", "op": "quiesce_end", "ok": true}']
    (tmp_path / "history.jsonl").write_bytes(b"\n".join([*good, line, *tail]) + b"\n")
    (tmp_path / "store.jsonl").write_bytes(b"")
    result = _invoke(tmp_path)
    assert result.exit_code == 2
    assert f"history.jsonl {expected}" in result.stderr


def test_a_duplicate_content_names_the_second_send(tmp_path: Path):
    lines = [
        b'{"t": 0.0, "actor": "harness", "op": "run_start", "store_max_id": 0}',
        b"",
        b'{"t": 0.1, "actor": "c1", "op": "send", "msg": "m1", "content": "x"}',
        b'{"t": 0.2, "actor": "c2", "op": "send", "msg": "m2", "content": "x"}',
    ]
    (tmp_path / "history.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    (tmp_path / "store.jsonl").write_bytes(b"")
    result = _invoke(tmp_path)
    assert result.exit_code == 2
    assert "history.jsonl line 4: a second send of the same content" in result.stderr


def test_a_bad_store_row_names_its_line(tmp_path: Path):
    (tmp_path / "history.jsonl").write_bytes(b"")
    (tmp_path / "store.jsonl").write_bytes(
        b'{"id": 1, "client_offset": null, "content": "a"}\n{"id": "two", "content": "b"}\n')
    result = _invoke(tmp_path)
    assert result.exit_code == 2
    assert "store.jsonl line 2: 'id' must be an integer" in result.stderr


def test_a_duplicate_store_id_names_the_second_row_and_the_first(tmp_path: Path):
    (tmp_path / "history.jsonl").write_bytes(b"")
    (tmp_path / "store.jsonl").write_bytes(
        b'{"id": 1, "client_offset": null, "content": "a"}\n'
        b'{"id": 2, "client_offset": null, "content": "b"}\n\n'
        b'{"id": 1, "client_offset": null, "content": "c"}\n'
        b'{"id": 2, "client_offset": null, "content": "d"}\n')
    result = _invoke(tmp_path)
    assert result.exit_code == 2
    assert "store.jsonl line 4: a second row with id 1 (the first is line 1)" in result.stderr


@pytest.mark.parametrize("missing", ["history.jsonl", "store.jsonl"])
def test_a_missing_file_exits_2_naming_it(run, missing: str):
    root = _clean(run)
    (root / missing).unlink()
    result = _invoke(root)
    assert result.exit_code == 2
    assert f"{missing}: missing" in result.stderr


def test_another_history_format_is_refused(run):
    root = _clean(run)
    (root / "params.json").write_bytes(b'{"history_format": 2}')
    result = _invoke(root)
    assert result.exit_code == 2
    assert "history_format 2 is not supported" in result.stderr


def test_the_installed_command_exits_with_the_verdict(run):
    root = _clean(run)
    bad = run()
    bad.send("c1", "m1")
    bad.quiesce()
    exe = Path(sys.executable).with_name("faultlab")
    done = subprocess.run([str(exe), "check", str(root), str(bad.write())],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout.count("VALID") == 2
