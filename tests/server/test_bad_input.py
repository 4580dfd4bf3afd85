"""Bad input changes nothing: arbitrary JSON at the event and the handshake, and the pure rules."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
from chat_client import ChatClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests_server_argv import server_argv

from faultlab.harness.processes import Child, Supervisor
from faultlab.server.validation import Message, Rejection, parse_server_offset, validate_message

T = TypeVar("T")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.text(min_size=4090, max_size=4100, alphabet="ab"),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


auth_values = (
    st.dictionaries(
        st.sampled_from(["serverOffset", "pid", "offset", "x"]), json_values, max_size=4
    )
    | st.none()
    | st.text(max_size=8)
    | st.lists(json_values, max_size=3)
)
"""A CONNECT payload is an object on the wire; a bare number cannot even be framed."""


def contract_accepts(args: tuple[Any, ...]) -> bool:
    """The chat contract, written independently of the server's validation module."""
    if len(args) != 2:
        return False
    content, offset = args
    return (
        isinstance(content, str)
        and 0 < len(content.encode("utf-8", "surrogatepass")) <= 4096
        and isinstance(offset, str)
        and 0 < len(offset) <= 128
    )


def test_arbitrary_events_and_handshakes_store_only_valid_messages(tmp_path: Path) -> None:
    """The clients' loop runs in its own thread, so pings are answered between examples."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    def run(coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout=30)

    db = tmp_path / "chat.db"
    supervisor = Supervisor()
    expected: list[tuple[str, str]] = []
    seen_offsets: set[str] = set()

    async def start() -> tuple[Child, ChatClient]:
        child = await supervisor.spawn(
            "server", server_argv(db), tmp_path / "server.log", ready_url="/healthz"
        )
        client = ChatClient(child.url)
        await client.connect()
        return child, client

    server, client = run(start())

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(args=st.lists(json_values, max_size=3), auth=auth_values)
    def check(args: list[Any], auth: Any) -> None:
        answer = run(client.send(*args) if args else client.send(None))
        sent = tuple(args) if args else (None,)
        if contract_accepts(sent):
            assert answer is None
            if sent[1] not in seen_offsets:
                seen_offsets.add(sent[1])
                expected.append((sent[1], sent[0]))
        else:
            assert isinstance(answer, dict) and set(answer) == {"error", "detail"}, answer
        other = ChatClient(server.url)
        other.auth_override = auth
        run(other.connect())
        assert other.sid
        run(other.leave())

    async def health() -> int:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}/healthz") as r:
            return (await r.json())["messages"]

    try:
        check()
        with sqlite3.connect(db) as conn:
            stored = list(conn.execute("SELECT client_offset, content FROM messages ORDER BY id"))
        assert stored == expected
        assert run(health()) == len(expected)
    finally:
        run(client.leave())
        run(supervisor.close())
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), "missing_content"),
        (("a", "b", "c"), "too_many_arguments"),
        ((1, "x"), "content_not_string"),
        (("", "x"), "content_empty"),
        (("é" * 2049, "x"), "content_too_large"),
        (("a",), "client_offset_missing"),
        (("a", None), "client_offset_missing"),
        (("a", 5), "client_offset_not_string"),
        (("a", ""), "client_offset_empty"),
        (("a", "x" * 129), "client_offset_too_long"),
    ],
)
def test_each_rejection_is_precise(args: tuple[Any, ...], code: str) -> None:
    result = validate_message(args, exactly_once=True, max_content=4096)
    assert isinstance(result, Rejection) and result.code == code and result.detail


def test_weak_levels_take_content_alone() -> None:
    assert validate_message(("a",), exactly_once=False, max_content=4) == Message("a", None)
    assert validate_message(("a" * 4, "x" * 128), exactly_once=True, max_content=4) == Message(
        "a" * 4, "x" * 128
    )


@pytest.mark.parametrize(
    ("auth", "cursor", "complains"),
    [
        (None, 0, False),
        ({}, 0, False),
        ({"serverOffset": 3}, 3, False),
        ({"serverOffset": -1}, 0, True),
        ({"serverOffset": 1.5}, 0, True),
        ({"serverOffset": "2"}, 0, True),
        ({"serverOffset": True}, 0, True),
        ({"serverOffset": 11}, 0, True),
        ([1], 0, True),
    ],
)
def test_server_offset_parsing(auth: Any, cursor: int, complains: bool) -> None:
    got, complaint = parse_server_offset(auth, max_id=10)
    assert got == cursor and bool(complaint) == complains
