"""The nemesis: every fault kind applied and healed, seen in the history and in the
proxy's or the server's own state (a real cluster, real lean clients)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psutil
import pytest
from engine_helpers import Env, until
from engine_helpers import cluster_env as cluster_env  # a pytest fixture

from faultlab.harness.nemesis import Nemesis
from faultlab.harness.schedule import parse_schedule

LONG = 30.0  # a fault held "for the test": heal_all ends it


async def start_fault(env: Env, entry: dict[str, Any]) -> Nemesis:
    """Start one fault now and wait until it is active."""
    nemesis = Nemesis(env.cluster, env.clients, env.history, parse_schedule([entry]), seed=3)
    nemesis.start()
    await until(lambda: "f1" in nemesis.active or nemesis.done, f"{entry['kind']} to start")
    assert not nemesis.errors, nemesis.errors
    return nemesis


def assert_started_and_ended(env: Env, kind: str) -> None:
    starts = env.events("fault_start", kind=kind)
    ends = env.events("fault_end", kind=kind)
    assert len(starts) == 1 and len(ends) == 1, (starts, ends)
    assert starts[0]["fault"] == ends[0]["fault"]
    assert starts[0]["t"] <= ends[0]["t"]


TOXICS = [
    ("latency", {"latency": 40, "jitter": 5}, "latency", {"latency": 40, "jitter": 5}),
    ("blackhole", {}, "timeout", {"timeout": 0}),
    ("bandwidth", {"rate": 8}, "bandwidth", {"rate": 8}),
    ("slicer", {"average_size": 8}, "slicer", {"average_size": 8}),
    ("reset_peer", {"timeout": 50}, "reset_peer", {"timeout": 50}),
    ("slow_close", {"delay": 20}, "slow_close", {"delay": 20}),
    ("limit_data", {"bytes": 100000}, "limit_data", {"bytes": 100000}),
]


async def test_network_toxics_are_added_to_one_group_and_removed(cluster_env: Env) -> None:
    env = cluster_env
    control = env.cluster.proxies.control
    for kind, params, toxic_type, attributes in TOXICS:
        nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": kind,
                                          "target": "group:1", "params": params})
        toxics = (await control.get("group1"))["toxics"]
        assert {(t["type"], t["stream"]) for t in toxics} == {
            (toxic_type, "upstream"), (toxic_type, "downstream")}, kind
        for t in toxics:
            assert attributes.items() <= t["attributes"].items(), (kind, t)
        assert (await control.get("group0"))["toxics"] == []
        await nemesis.heal_all()
        assert (await control.get("group1"))["toxics"] == [], kind
        assert_started_and_ended(env, kind)


async def test_one_direction_only(cluster_env: Env) -> None:
    env = cluster_env
    nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": "blackhole",
                                      "target": "all", "params": {"stream": "upstream"}})
    for name in ("group0", "group1"):
        toxics = (await env.cluster.proxies.control.get(name))["toxics"]
        assert [(t["type"], t["stream"]) for t in toxics] == [("timeout", "upstream")]
    await nemesis.heal_all()
    assert_started_and_ended(env, "blackhole")


async def test_partition_cuts_one_group_and_heals(cluster_env: Env) -> None:
    env = cluster_env
    c0, c1 = env.clients
    nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": "partition",
                                      "target": "group:0"})
    assert (await env.cluster.proxies.control.get("group0"))["enabled"] is False
    await until(lambda: not c0.connected, "c0 (group 0) to be cut off")
    assert c1.connected
    await c1.send("while cut")
    await until(lambda: len(c1.shown()) == 1, "c1 to show its own message")
    await nemesis.heal_all()
    assert (await env.cluster.proxies.control.get("group0"))["enabled"] is True
    await until(lambda: c0.connected and len(c0.shown()) == 1, "c0 to reconnect and catch up")
    assert env.events("disconnect", actor="c0") and not env.events("disconnect", actor="c1")
    assert_started_and_ended(env, "partition")


async def test_process_faults(cluster_env: Env) -> None:
    env = cluster_env
    server = env.cluster.server
    # pause: the kernel says the process is stopped, then it runs again
    nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": "pause"})
    assert psutil.Process(server.pid).status() == psutil.STATUS_STOPPED
    await nemesis.heal_all()
    assert psutil.Process(server.pid).status() != psutil.STATUS_STOPPED
    # kill -9: the server is gone for the fault's duration, back on the same port after
    port, pid = server.port, server.pid
    nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": "kill"})
    assert not server.running and server.proc.returncode == -9
    await until(lambda: not any(c.connected for c in env.clients), "clients to notice")
    await nemesis.heal_all()
    assert server.running and server.port == port and server.pid != pid
    # graceful restart: SIGTERM, a clean exit
    nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": "restart"})
    assert server.proc.returncode == 0
    await nemesis.heal_all()
    assert server.running
    await until(lambda: all(c.connected for c in env.clients), "clients to reconnect")
    for kind in ("pause", "kill", "restart"):
        assert_started_and_ended(env, kind)


async def test_store_faults(cluster_env: Env) -> None:
    env = cluster_env
    db = env.cluster.store_path
    nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": "store_lock"})
    probe = sqlite3.connect(db, timeout=0.05)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        probe.execute("INSERT INTO messages (content) VALUES ('x')")
    c0 = env.clients[0]
    await c0.send("during the lock")
    await until(lambda: bool(env.events("attempt", actor="c0")), "an attempt")
    assert c0.pending() == 1  # not acked while the store is locked
    await nemesis.heal_all()
    await until(lambda: c0.pending() == 0, "the retry to be acked after the lock")
    probe.close()
    assert_started_and_ended(env, "store_lock")

    nemesis = await start_fault(env, {"at": 0, "duration": LONG, "kind": "store_error"})
    state = await env.cluster.failpoints()
    assert state["armed"]["before_insert"]["action"] == "error"
    await nemesis.heal_all()
    assert "before_insert" not in (await env.cluster.failpoints())["armed"]
    assert_started_and_ended(env, "store_error")


async def test_failpoint_fires_on_the_next_insert_and_is_recorded(cluster_env: Env) -> None:
    env = cluster_env
    nemesis = await start_fault(env, {
        "at": 0, "kind": "failpoint",
        "params": {"name": "before_insert", "action": "delay", "ms": 50, "count": 1}})
    assert "before_insert" in (await env.cluster.failpoints())["armed"]
    await env.clients[0].send("slow")
    await nemesis.wait()  # the fault ends by itself once its one firing is seen
    fired = env.events("fault_fired")
    assert [(e["fault"], e["name"]) for e in fired] == [("f1", "before_insert")]
    assert_started_and_ended(env, "failpoint")


async def test_crash_failpoint_restarts_the_server(cluster_env: Env) -> None:
    env = cluster_env
    pid = env.cluster.server.pid
    nemesis = await start_fault(env, {
        "at": 0, "kind": "failpoint",
        "params": {"name": "after_commit", "action": "crash", "when": "connected"}})
    await env.clients[1].send("crash on me")
    await nemesis.wait()
    assert env.cluster.server.running and env.cluster.server.pid != pid
    assert [e["name"] for e in env.events("fault_fired")] == ["after_commit"]
    await until(lambda: all(c.connected and c.pending() == 0 for c in env.clients),
                "the retry after the crash to be acked")
    assert "exit 86" in env.cluster.run.log("server").read_text()
    assert_started_and_ended(env, "failpoint")


async def test_client_faults(cluster_env: Env) -> None:
    env = cluster_env
    c0, c1 = env.clients
    sid = env.events("connect", actor="c0")[-1]["sid"]
    nemesis = await start_fault(env, {"at": 0, "kind": "drop_transport", "target": "client:c0"})
    await nemesis.wait()
    await until(lambda: len(env.events("connect", actor="c0")) == 2, "c0 to reconnect")
    assert env.events("connect", actor="c0")[-1]["sid"] != sid
    assert env.events("disconnect", actor="c0")
    assert not env.events("disconnect", actor="c1")

    await c1.send("x")
    await until(lambda: len(c0.shown()) == 1, "c0 to show x")
    nemesis = await start_fault(env, {"at": 0, "kind": "refresh", "target": "group:0",
                                      "params": {"persist_offset": True}})
    await nemesis.wait()
    sessions = env.events("session_start", actor="c0")
    assert [s["resume_from"] for s in sessions] == [0, 1]

    nemesis = await start_fault(env, {"at": 0, "duration": 0.3, "kind": "offline",
                                      "target": "client:c1"})
    await until(lambda: not c1.connected, "c1 to go offline")
    await nemesis.wait()
    await until(lambda: c1.connected, "c1 to come back")

    nemesis = await start_fault(env, {"at": 0, "kind": "leave", "target": "random:1"})
    await nemesis.wait()
    assert sum(c.left for c in env.clients) == 1
    assert len(env.events("leave")) == 1
    for kind in ("drop_transport", "refresh", "offline", "leave"):
        assert_started_and_ended(env, kind)


async def test_a_fault_waits_for_a_send_in_flight(cluster_env: Env,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    env = cluster_env
    schedule = parse_schedule([{"at": 0, "kind": "drop_transport", "target": "client:c0",
                                "params": {"when": "in_flight", "when_deadline": 20}}])
    nemesis = Nemesis(env.cluster, env.clients, env.history, schedule)
    nemesis.start()
    await until(lambda: env.history.now() > 0, "the clock")  # let the nemesis task begin
    assert not env.events("fault_start")
    await env.clients[0].send("in flight")
    await nemesis.wait()
    (send,) = env.events("send", actor="c0")
    (start,) = env.events("fault_start")
    assert start["t"] >= send["t"]
    assert "not met" not in caplog.text
    await until(lambda: env.clients[0].pending() == 0, "the message to be delivered anyway")
