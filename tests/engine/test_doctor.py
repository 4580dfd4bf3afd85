"""`faultlab doctor`: both shipped targets match the chat contract; a broken one is named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from faultlab.harness.doctor import diagnose
from faultlab.harness.targets import load_target


def failures(findings: list) -> list[str]:
    return [f"{f.level} {f.check}: {f.detail}" for f in findings if not f.ok]


async def test_the_reference_server_passes(tmp_path: Path) -> None:
    findings = await diagnose(load_target("reference"), tmp_path, ["exactly-once"])
    assert failures(findings) == []
    checks = {(f.level, f.check) for f in findings}
    assert ("exactly-once", "a duplicate client offset is acked, not stored") in checks
    assert ("exactly-once+memory", "connection state recovery (memory)") in checks
    assert ("exactly-once+durable", "connection state recovery (durable)") in checks


async def test_a_weak_level_is_checked_without_acks(tmp_path: Path) -> None:
    findings = await diagnose(load_target("reference"), tmp_path, ["at-most-once"], ["off"])
    assert failures(findings) == []
    assert not any("rejected" in f.check for f in findings)


@pytest.mark.node
async def test_the_node_peer_passes(tmp_path: Path) -> None:
    findings = await diagnose(load_target("node-peer"), tmp_path, ["exactly-once"])
    assert failures(findings) == []
    assert any(f.check == "connection state recovery (memory)" for f in findings)


def mutant(tmp_path: Path, mutation: str) -> Path:
    """The reference target with a planted bug (a server that breaks the contract)."""
    text = load_target("reference").source.read_text()
    text = text.replace('"--busy-timeout", "{busy_timeout_ms}",',
                        f'"--busy-timeout", "{{busy_timeout_ms}}", "--mutation", "{mutation}",')
    text = text.replace("[store]", '[env]\nFAULTLAB_ALLOW_MUTATIONS = "1"\n\n[store]')
    path = tmp_path / f"{mutation}.toml"
    path.write_text(text)
    return path


def test_a_server_without_catch_up_is_named(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "faultlab", "doctor", "--target", str(mutant(tmp_path, "no_sync")),
         "--level", "exactly-once", "--recovery", "off"],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert ("FAIL exactly-once         catch-up from serverOffset: serverOffset=0: expected 3 "
            "`chat message` event(s) within 3s, got 0: []") in lines
    assert any(line.startswith("ok   exactly-once         send, ack and broadcast")
               for line in lines)
    assert lines[-1].startswith("reference: ")
    assert lines[-1].endswith("mismatch(es) with the chat contract")


async def test_a_server_that_loses_acks_is_named(tmp_path: Path) -> None:
    findings = await diagnose(load_target(mutant(tmp_path, "drop_silently")), tmp_path,
                              ["exactly-once"], ["off"])
    assert any("send, ack and broadcast: no ack within 3s" in f for f in failures(findings))


def test_a_bad_target_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.toml").write_text('name = "x"\n')
    result = subprocess.run(
        [sys.executable, "-m", "faultlab", "doctor", "--target", str(tmp_path / "t.toml")],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "t.toml: start: missing" in result.stderr
