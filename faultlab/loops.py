"""The event loop a faultlab process runs on: uvloop where it is installed, else asyncio.

One choice for every part. The server and the harness both spend most of their CPU
per message in the loop and the kernel, and libuv's loop (the one Node runs on) costs
less there than asyncio's selector loop; asyncio stays selectable everywhere so a
loop-specific bug can always be told apart from a real one.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

LOOPS = ("uvloop", "asyncio")
DEFAULT_LOOP = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
"""uvloop where it is installed (it is pinned for every platform but Windows)."""

T = TypeVar("T")


class LoopUnavailable(RuntimeError):
    """The loop asked for cannot run here."""


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """A callable making a new loop of kind `name` (for `asyncio.Runner(loop_factory=...)`)."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name != "uvloop":
        raise LoopUnavailable(f"unknown event loop {name!r} (choose from {', '.join(LOOPS)})")
    try:
        import uvloop
    except ImportError:
        raise LoopUnavailable("uvloop is not installed (use the asyncio loop)") from None
    return uvloop.new_event_loop


def run(coro: Coroutine[Any, Any, T], name: str = DEFAULT_LOOP) -> T:
    """`asyncio.run(coro)` on a loop of kind `name`, with asyncio.run's Ctrl-C handling."""
    with asyncio.Runner(loop_factory=loop_factory(name)) as runner:
        return runner.run(coro)
