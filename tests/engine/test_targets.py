"""Target files: the shipped ones load, placeholders render, bad files name the key."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from faultlab.harness.targets import TargetError, load_target

GOOD = """
name = "toy"
start = ["{python}", "toy.py", "--port", "{port}", "--ping", "{ping_interval}"]
health = "/healthz"
acks = "before-broadcast"
levels = ["at-least-once"]
recovery = ["off"]
[env]
DB = "{db}"
PING_MS = "{ping_interval_ms}"
[store]
kind = "sqlite"
path = "{db}"
table = "chat"
content = "body"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "t.toml"
    path.write_text(text)
    return path


def test_reference_renders_the_server_command_line(tmp_path: Path) -> None:
    target = load_target()
    values = target.values(host="127.0.0.1", port=0, db=tmp_path / "s.db",
                           delivery="at-least-once", recovery="memory",
                           knobs={"ping_interval": 0.5, "busy_timeout": 0.2})
    argv = target.argv(values)
    assert argv[:4] == [sys.executable, "-m", "faultlab", "server"]
    pairs = dict(zip(argv[4::2], argv[5::2], strict=True))
    assert pairs["--delivery"] == "at-least-once"
    assert pairs["--recovery"] == "memory"
    assert pairs["--ping-interval"] == "0.5"
    assert pairs["--ping-timeout"] == "20"
    assert pairs["--busy-timeout"] == "200"
    assert target.store_path(values) == tmp_path / "s.db"
    assert target.failpoints == "/admin/failpoints"


def test_node_peer_is_configured_through_its_environment(tmp_path: Path) -> None:
    target = load_target("node-peer")
    values = target.values(host="127.0.0.1", port=0, db=tmp_path / "n.db",
                           delivery="exactly-once", recovery="memory",
                           knobs={"recovery_window": 2})
    env = target.environment(values)
    assert env["PORT"] == "0"
    assert env["RECOVERY_WINDOW_MS"] == "2000"
    assert Path(target.argv(values)[1]).resolve().is_file()
    assert target.supports("exactly-once", "durable") == (
        "target 'node-peer' does not support recovery 'durable' (off, memory)")
    assert target.supports("buffered", "memory") is None


def test_a_target_file_of_ones_own(tmp_path: Path) -> None:
    target = load_target(write(tmp_path, GOOD))
    assert target.name == "toy"
    assert target.store.table == "chat"
    assert target.store.content == "body"
    assert target.store.id == "id"  # default
    values = target.values(host="h", port=9, db=Path("/x.db"), delivery="d", recovery="r")
    assert target.environment(values) == {"DB": "/x.db", "PING_MS": "25000"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("acks = \"before-broadcast\"", "acks = \"never\""),
         "acks: 'never' is not one of after-broadcast, before-broadcast"),
        (("levels = [\"at-least-once\"]", "levels = [\"twice\"]"),
         "levels: 'twice' is not one of at-most-once"),
        (("\"{port}\"", "\"{prot}\""), "start: unknown placeholder {prot}"),
        (("PING_MS = \"{ping_interval_ms}\"", "PING_MS = 5"), "env.PING_MS: expected a string"),
        (("kind = \"sqlite\"", "kind = \"postgres\""),
         "store.kind: 'postgres' is not supported"),
        (("health = \"/healthz\"", "health = \"healthz\""), "health: expected a URL path"),
        (("name = \"toy\"", "nmae = \"toy\""), "nmae: unknown key"),
        (("health = \"/healthz\"\n", ""), "health: missing"),
        (("table = \"chat\"", "table = 3"), "store.table: expected str, got 3"),
    ],
)
def test_bad_target_files_name_the_key(tmp_path: Path, change: tuple[str, str],
                                       message: str) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(TargetError) as info:
        load_target(path)
    assert str(info.value).startswith(f"{path}: {message}")


def test_not_toml_and_missing(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="not valid TOML"):
        load_target(write(tmp_path, "name = "))
    with pytest.raises(TargetError, match=r"nosuch: no such target file or shipped target "
                                          r"\(node-peer, reference\)"):
        load_target("nosuch")
