"""The toxic interface: attributes plus one `pipe` coroutine run on a per-connection stub.

Modelled on Toxiproxy's `toxics/toxic.go`. A stub sits between the previous stage
and the next one; the toxic's `pipe` reads chunks with `stub.recv()`, waits with
`stub.sleep()` and forwards with `stub.send()`. Both waits are interruptible, which is
how a toxic is updated or removed on a live connection without losing data: the
interrupted pipe forwards (or `unrecv`s) what it holds and returns.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, Protocol

log = logging.getLogger("faultlab.proxy.toxics")


class Interrupted(Exception):
    """Raised inside a pipe by `recv` once the stub has been interrupted."""


@dataclasses.dataclass(slots=True)
class Chunk:
    """Bytes read from a socket, with the loop time they were read at."""

    data: bytes
    timestamp: float


Item = Chunk | None  # None is the end of the stream: close the link
Output = Callable[[Item], None]


class Flow(Protocol):
    """What a stub tells its link about bytes queued in it (for back-pressure)."""

    def queued_add(self, n: int) -> None: ...
    def queued_sub(self, n: int) -> None: ...


@dataclasses.dataclass
class Toxic:
    """Base of every toxic: integer attributes (as dataclass fields) and `pipe`."""

    type_name: ClassVar[str] = ""
    resets: ClassVar[bool] = False  # close with RST (SO_LINGER 0) instead of FIN

    async def pipe(self, stub: ToxicStub) -> None:
        raise NotImplementedError

    def new_state(self) -> Any:
        """Per-connection state that survives updates (Toxiproxy's StatefulToxic)."""
        return None

    def cleanup(self, stub: ToxicStub) -> None:
        """Called when the toxic is removed from a live connection."""

    def attributes(self) -> dict[str, int]:
        return dataclasses.asdict(self)


REGISTRY: dict[str, type[Toxic]] = {}


def register(cls: type[Toxic]) -> type[Toxic]:
    REGISTRY[cls.type_name] = cls
    return cls


@dataclasses.dataclass
class ToxicEntry:
    """A named toxic on one stream of a proxy (Toxiproxy's ToxicWrapper)."""

    name: str
    type: str
    stream: str  # as given by the user; `direction` is the parsed form
    direction: str
    toxicity: float
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        toxicity: float | int = self.toxicity
        if float(toxicity).is_integer():
            toxicity = int(toxicity)
        return {
            "attributes": self.toxic.attributes(),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            "toxicity": toxicity,
        }


class ToxicStub:
    """One toxic on one connection: an inbox, an output, and the running pipe."""

    def __init__(self, entry: ToxicEntry, output: Output, flow: Flow, rng: random.Random) -> None:
        self.entry = entry
        self.output = output
        self.rng = rng
        self.roll = rng.random()  # toxicity is drawn once per connection
        self.state = entry.toxic.new_state()
        self.active = False  # whether the real toxic (not a noop) runs
        self._flow = flow
        self._inbox: deque[Item] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._wants_input = False
        self._interrupt = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        return self._closed

    # --- used by the previous stage -------------------------------------------------
    def put(self, item: Item) -> None:
        if self._closed:
            return
        self._inbox.append(item)
        if item is not None:
            self._flow.queued_add(len(item.data))
        if self._wants_input:
            self._wake()

    # --- used by pipes --------------------------------------------------------------
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def recv(self, deadline: float | None = None) -> Item:
        """The next chunk, or None at the end of the stream.

        Raises `Interrupted` when the stub is interrupted, `TimeoutError` at `deadline`.
        """
        while True:
            if self._interrupt:
                raise Interrupted
            if self._inbox:
                item = self._inbox.popleft()
                if item is not None:
                    self._flow.queued_sub(len(item.data))
                return item
            if deadline is not None and self.now() >= deadline:
                raise TimeoutError
            delay = None if deadline is None else deadline - self.now()
            await self._park(delay, wants_input=True)

    def unrecv(self, item: Item) -> None:
        """Give an item back, so that the next pipe (or the next stage) gets it first."""
        self._inbox.appendleft(item)
        if item is not None:
            self._flow.queued_add(len(item.data))

    async def sleep(self, seconds: float) -> bool:
        """Wait; False when interrupted (the pipe must then pass on what it holds)."""
        if self._interrupt:
            return False
        if seconds > 0:
            await self._park(seconds, wants_input=False)
        return not self._interrupt

    def send(self, chunk: Chunk) -> None:
        self.output(chunk)

    def close(self) -> None:
        """End the stream after this stub: the link closes its destination."""
        if not self._closed:
            self._closed = True
            self.output(None)

    # --- used by the link -----------------------------------------------------------
    def start(self) -> None:
        self._interrupt = False
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def interrupt(self) -> bool:
        """Stop the running pipe without losing data; False if the stub already closed."""
        if self._closed or self._task is None or self._task.done():
            return False
        self._interrupt = True
        self._wake()
        await asyncio.wait([self._task])  # never raises, even if the link was torn down
        return True

    def drain(self) -> list[Item]:
        """Take everything still queued (when this stub leaves the chain)."""
        items = list(self._inbox)
        self._inbox.clear()
        for item in items:
            if item is not None:
                self._flow.queued_sub(len(item.data))
        return items

    def cancel(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        entry = self.entry
        self.active = self.roll < entry.toxicity
        pipe = entry.toxic.pipe if self.active else noop_pipe
        try:
            await pipe(self)
        except Interrupted:
            pass
        except Exception:
            log.exception("toxic %s failed; closing its link", entry.name)
            self.close()

    async def _park(self, delay: float | None, *, wants_input: bool) -> None:
        loop = asyncio.get_running_loop()
        waiter = self._waiter = loop.create_future()
        self._wants_input = wants_input
        timer = loop.call_later(delay, self._wake) if delay is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            self._wants_input = False
            if timer is not None:
                timer.cancel()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


async def noop_pipe(stub: ToxicStub) -> None:
    """Pass everything through (what a stub runs when its toxicity draw misses)."""
    while True:
        chunk = await stub.recv()
        if chunk is None:
            stub.close()
            return
        stub.send(chunk)
