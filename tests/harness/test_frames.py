"""The lean client's WebSocket frame splitter (`transports._Frames`) against aiohttp's own
parser: for any stream a server may send, cut into reads anywhere, the client sees the
same messages, in the same order, and the same failure."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest
from aiohttp.http import WebSocketReader
from hypothesis import given, settings
from hypothesis import strategies as st

from faultlab.harness.clients.transports import _Frames, _TextQueue

TEXT, PING, CLOSE = 0x1, 0x9, 0x8


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = False,
          rsv: int = 0, key: bytes = b"\x5a\x17\xc3\x08") -> bytes:
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    if n < 126:
        head = bytes([first, n | (0x80 if mask else 0)])
    elif n < 1 << 16:
        head = bytes([first, 126 | (0x80 if mask else 0)]) + n.to_bytes(2)
    else:
        head = bytes([first, 127 | (0x80 if mask else 0)]) + n.to_bytes(8)
    if mask:
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


def fragmented(text: str, parts: int) -> bytes:
    data = text.encode()
    step = max(1, len(data) // parts)
    chunks = [data[i:i + step] for i in range(0, len(data), step)] or [b""]
    out = b""
    for i, chunk in enumerate(chunks):
        out += frame(TEXT if i == 0 else 0, chunk, fin=i == len(chunks) - 1)
    return out


_text = st.text(max_size=300)
_frame = st.one_of(
    _text.map(lambda t: frame(TEXT, t.encode())),
    _text.map(lambda t: frame(TEXT, t.encode())),  # the common case, twice as often
    st.sampled_from([frame(TEXT, b"x" * 70_000), frame(TEXT, "é".encode() * 200)]),
    st.tuples(_text, st.integers(2, 4)).map(lambda a: fragmented(*a)),
    st.binary(max_size=125).map(lambda b: frame(PING, b)),
    st.binary(max_size=125).map(lambda b: frame(0xA, b)),  # pong
    st.binary(max_size=200).map(lambda b: frame(0x2, b)),  # binary
    st.just(frame(TEXT, b"\xff\xfe")),  # invalid UTF-8
    st.just(frame(CLOSE, (1000).to_bytes(2) + b"bye")),
)
_bad = st.one_of(  # what no server may send: aiohttp's parser must judge it
    st.tuples(_text, st.binary(min_size=4, max_size=4)).map(
        lambda a: frame(TEXT, a[0].encode(), mask=True, key=a[1])),
    _text.map(lambda t: frame(TEXT, t.encode(), rsv=4)),
    st.just(frame(0x3, b"reserved opcode")),
    _text.map(lambda t: frame(TEXT, b"unfinished", fin=False) + frame(TEXT, t.encode())),
)


class _Protocol:
    _reading_paused = False

    def pause_reading(self) -> None:
        self._reading_paused = True

    def resume_reading(self) -> None:
        self._reading_paused = False


class _Log(_TextQueue):
    """Logs every message in the order the client would see it."""

    log: list[tuple[Any, Any]]

    def feed_data(self, data: aiohttp.WSMessage, size: int) -> None:  # type: ignore[override]
        if not (self.on_text is not None and data[0] is aiohttp.WSMsgType.TEXT):
            self.log.append((data[0], data[1]))
        super().feed_data(data, size)


def _receive(stream: bytes, cuts: list[int], split: bool) -> tuple[list[Any], str | None]:
    async def run() -> tuple[list[Any], str | None]:
        queue = _Log(_Protocol(), 2**16, loop=asyncio.get_running_loop())
        queue.log = []
        queue.on_text = lambda text: queue.log.append((aiohttp.WSMsgType.TEXT, text))
        parser = WebSocketReader(queue, 0, False, True)
        feed = _Frames(parser, queue).data_received if split else parser.feed_data
        bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
        for a, b in itertools.pairwise(bounds):
            feed(stream[a:b])
        exc = queue.exception()
        return queue.log, None if exc is None else f"{type(exc).__name__}{exc.args}"
    return asyncio.run(run())


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(_frame, max_size=12), bad=st.none() | _bad,
       tail=st.lists(_frame, max_size=3), cuts=st.lists(st.integers(0, 10**6), max_size=8))
def test_the_splitter_delivers_what_aiohttps_parser_delivers(
        frames: list[bytes], bad: bytes | None, tail: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frames) + (bad or b"") + b"".join(tail)
    assert _receive(stream, cuts, split=True) == _receive(stream, cuts, split=False)


def test_a_whole_text_frame_per_read_never_reaches_aiohttps_parser() -> None:
    """The fast path is taken (a planted parser that fails would show it otherwise)."""
    calls: list[bytes] = []

    class Parser:
        def feed_data(self, data: bytes) -> None:
            calls.append(data)

    async def run() -> list[str]:
        queue = _TextQueue(_Protocol(), 2**16, loop=asyncio.get_running_loop())
        got: list[str] = []
        queue.on_text = got.append
        frames = _Frames(Parser(), queue)  # type: ignore[arg-type]
        for text in ("short", "é" * 100, "x" * 1000):
            frames.data_received(frame(TEXT, text.encode()))
        frames.data_received(frame(PING, b"p"))
        return got
    assert asyncio.run(run()) == ["short", "é" * 100, "x" * 1000]
    assert calls == [frame(PING, b"p")]


@pytest.mark.parametrize("cut", [1, 2, 3, 5])
def test_a_frame_cut_anywhere_arrives_once(cut: int) -> None:
    stream = frame(TEXT, b"y" * 200) + frame(TEXT, b"z")
    log, exc = _receive(stream, [cut], split=True)
    assert exc is None
    assert log == [(aiohttp.WSMsgType.TEXT, "y" * 200), (aiohttp.WSMsgType.TEXT, "z")]


def test_a_masked_frame_whose_length_byte_matches_the_read_goes_to_aiohttp() -> None:
    """0x83 (masked, 3 bytes) is also 131: a read of 133 bytes must not be taken for one
    whole unmasked frame of 131 bytes, even where those bytes decode as text."""
    masked = frame(TEXT, b"abc", mask=True, key=b"\0" * 4)
    first = frame(TEXT, b"p" * (133 - len(masked) - 2), fin=False)  # header 0x01: ASCII
    read = masked + first
    assert len(read) == 133 and read[1] == 0x83
    stream = read + frame(0, b"q")
    assert _receive(stream, [133], split=True) == _receive(stream, [133], split=False)
