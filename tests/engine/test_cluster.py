"""The cluster: real server behind real client-group proxies, torn down without leaks."""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest
from engine_helpers import KNOBS, Env, until
from engine_helpers import cluster_env as cluster_env  # a pytest fixture

from faultlab.harness.cluster import Cluster, ClusterError
from faultlab.harness.processes import ChildFailed
from faultlab.harness.rundir import create_run_dir
from faultlab.harness.targets import load_target


def refused(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def test_messages_flow_through_each_group_proxy(cluster_env: Env) -> None:
    env = cluster_env
    cluster = env.cluster
    urls = {cluster.client_url(i) for i in range(4)}
    assert len(urls) == 2 and cluster.server_url not in urls
    assert cluster.client_url(0) == cluster.client_url(2)
    assert (await cluster.health())["level"] == "exactly-once"
    await env.clients[0].send("hello")
    await until(lambda: len(env.clients[1].shown()) == 1, "c1 (other group) to show it")
    assert len(await cluster.store_ids()) == 1
    rows = await cluster.snapshot()
    assert [r["content"] for r in rows] == ["hello"]
    assert cluster.run.store.read_text().count("\n") == 1


async def test_teardown_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path / "run")
    async with Cluster(run, load_target(), "at-least-once", groups=3, knobs=KNOBS) as cluster:
        assert cluster.proxies is not None
        ports = [p.listen_port for p in cluster.proxies.groups] + [cluster.server.port]
        pids = [c.pid for c in cluster.supervisor.children]
        assert all(not refused(p) for p in ports)
    assert all(refused(p) for p in ports)
    assert not any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
                   for pid in pids)
    assert (run.logs / "server.log").read_text().count("listening on") == 1


async def test_server_restarts_on_the_same_port_with_the_same_store(cluster_env: Env) -> None:
    env = cluster_env
    cluster = env.cluster
    await env.clients[0].send("before")
    await until(lambda: len(env.clients[0].shown()) == 1, "the first message")
    port, pid = cluster.server.port, cluster.server.pid
    await cluster.restart_server(kill=True)
    assert cluster.server.port == port and cluster.server.pid != pid
    assert (await cluster.health())["messages"] == 1
    await until(lambda: all(c.connected for c in env.clients), "clients to reconnect")
    await env.clients[1].send("after")
    await until(lambda: len(env.clients[0].shown()) == 2, "the second message")


async def test_a_server_that_cannot_start_says_why(tmp_path: Path) -> None:
    toml = (Path(load_target().source).read_text()
            .replace('"--delivery", "{delivery}"', '"--delivery", "sometimes"'))
    (tmp_path / "bad.toml").write_text(toml)
    run = create_run_dir(tmp_path / "run")
    with pytest.raises(ChildFailed) as info:
        async with Cluster(run, load_target(tmp_path / "bad.toml"), "exactly-once"):
            pass
    assert "server exited with code 2" in str(info.value)
    assert "sometimes" in str(info.value)


def test_an_unsupported_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="does not support recovery 'durable'"):
        Cluster(create_run_dir(tmp_path / "r"), load_target("node-peer"), "exactly-once",
                "durable")
