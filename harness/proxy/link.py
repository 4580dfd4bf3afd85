"""One relayed TCP connection: two sockets and a link per direction.

With no toxic on a direction the link is a bare relay: the source's reads land in one
reused buffer that is written straight into the destination transport. Once a read
fills that buffer (a bulk flow) and the destination's buffer is empty, a `Splicer`
takes over on Linux and moves the bytes socket -> pipe -> socket inside the kernel;
small-message links (chat traffic) never pay its pipe and descriptors. Adding a toxic
stops the splicer (what its pipe held goes to the destination first) and swaps in a
chain of stubs (see `toxics.base`); removing the last one swaps the bare relay back
once the chain has drained, so bytes are never reordered or dropped by a change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import struct
from collections.abc import Callable, Iterable
from typing import cast

from faultlab.harness.proxy import splice
from faultlab.harness.proxy.toxics.base import Chunk, Item, ToxicEntry, ToxicStub

log = logging.getLogger("faultlab.proxy")

HIGH_WATER = 4 * 1024 * 1024  # bytes queued in a toxic chain before the source pauses
LOW_WATER = 1024 * 1024
WRITE_HIGH_WATER = 1024 * 1024  # a destination's buffer before the source pauses


def _discard(nbytes: int) -> None:
    """Where data goes once the destination is gone."""


READ_SIZE = 256 * 1024


def _no_delay(sock: socket.socket | None) -> None:
    """TCP_NODELAY, as Toxiproxy's Go sockets have: a relayed write goes out at once.

    asyncio sets it only on sockets whose `proto` is IPPROTO_TCP, and the listener's
    accepted sockets have proto 0, so without this the client side ran Nagle: a small
    frame waited for the ACK of the one before it (up to the peer's delayed-ACK
    timeout, ~40 ms, when the peer delays its ACKs)."""
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class Side(asyncio.BufferedProtocol):
    """One socket of a connection; reading stays paused until its link starts.

    Reads land in one buffer reused for the socket's lifetime (a fresh 256 KiB bytes
    object per read costs an mmap and its page faults); `on_read` is replaced by
    the link with the fastest handler for its current state.
    """

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.buffer = memoryview(bytearray(READ_SIZE))
        self.transport: asyncio.Transport | None = None
        self.out_link: Link | None = None  # the link this side feeds
        self.in_link: Link | None = None  # the link that writes to this side
        self.lost = False
        self._early: list[bytes] = []
        self._fd: int | None = None  # a duplicate of the socket's descriptor, for splicing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        _no_delay(transport.get_extra_info("socket"))
        self.transport.pause_reading()
        self.transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self.conn.side_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.buffer

    def buffer_updated(self, nbytes: int) -> None:
        # uvloop binds this method once, so the link swaps `on_read`, not this method
        self.on_read(nbytes)

    def on_read(self, nbytes: int) -> None:
        # replaced by the link once it starts; this only catches bytes read before
        self._early.append(bytes(self.buffer[:nbytes]))

    def eof_received(self) -> bool:
        if self.out_link is not None:
            self.out_link.feed_eof()
        return True  # keep the socket: the link closes it when the chain is done

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.conn.side_lost(self)
        self.release_fd()

    def fd(self) -> int:
        """A descriptor of this socket that the event loop lets us watch ourselves."""
        if self._fd is None:
            assert self.transport is not None
            self._fd = os.dup(self.transport.get_extra_info("socket").fileno())
        return self._fd

    def release_fd(self) -> None:
        """Close the duplicate, which would otherwise keep the socket open."""
        if self._fd is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
            os.close(self._fd)
            self._fd = None

    def pause_writing(self) -> None:
        if self.in_link is not None:
            self.in_link.dest_full(True)

    def resume_writing(self) -> None:
        if self.in_link is not None:
            self.in_link.dest_full(False)

    def take_early(self) -> list[bytes]:
        early, self._early = self._early, []
        return early

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def set_reset_on_close(self) -> None:
        """SO_LINGER 0: closing the socket sends RST, as Toxiproxy's reset_peer does."""
        if self.transport is None or self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class Link:
    """One direction of a connection: source -> toxic stubs, in order -> destination."""

    def __init__(
        self, direction: str, source: Side, dest: Side, rng: random.Random,
        use_splice: bool = False,
    ) -> None:
        self.direction = direction
        self.source = source
        self.dest = dest
        self.rng = rng
        self.stubs: list[ToxicStub] = []
        self.queued = 0
        self.finished = False
        self._eof = False
        self._queue_full = False
        self._dest_full = False
        self._use_splice = use_splice and splice.AVAILABLE
        self._splicer: splice.Splicer | None = None
        self._bulk = False  # a read has filled the buffer: splice once it is safe
        self._started = False
        source.out_link = self
        dest.in_link = self

    def start(self, entries: Iterable[ToxicEntry]) -> None:
        for entry in entries:
            self.stubs.append(self._stub(entry))
        self._rewire()
        for stub in self.stubs:
            stub.start()
        for data in self.source.take_early():
            self._feed(data)
        self._started = True
        self._sync_reading()

    # --- toxics changing on a live link ---------------------------------------------
    def add(self, entry: ToxicEntry) -> None:
        stub = self._stub(entry)
        self.stubs.append(stub)
        self._rewire()
        stub.start()

    async def update(self, entry: ToxicEntry) -> None:
        stub = self._find(entry)
        if stub is not None and await stub.interrupt():
            stub.start()

    async def remove(self, entry: ToxicEntry) -> None:
        stub = self._find(entry)
        if stub is None:
            return
        if await stub.interrupt():
            if stub.active:
                entry.toxic.cleanup(stub)
            if not stub.closed:
                for item in stub.drain():
                    stub.output(item)
        stub.cancel()
        if stub in self.stubs:
            self.stubs.remove(stub)
            self._rewire()

    # --- data in --------------------------------------------------------------------
    def feed_eof(self) -> None:
        if self._eof:
            return
        self._eof = True
        self._stop_splice()
        if self.stubs:
            self.stubs[0].put(None)
        else:
            self._deliver(None)

    def _relay(self, nbytes: int) -> None:
        """The bare relay: what was just read goes straight to the destination."""
        transport = self.dest.transport
        assert transport is not None
        buffer = self.source.buffer
        transport.write(buffer[:nbytes])
        if nbytes == len(buffer):
            self._bulk = self._use_splice  # a bulk flow: a pipe and two descriptors pay off
        if transport.get_write_buffer_size():
            # asyncio may keep a view of the unsent part (3.12+): never reuse that buffer
            self.source.buffer = memoryview(bytearray(READ_SIZE))
        elif self._bulk:
            self._try_splice()

    def _feed_read(self, nbytes: int) -> None:
        self._feed(self.source.buffer[:nbytes])

    def _feed(self, data: bytes | memoryview) -> None:
        """Bytes read from the source (the slow path: toxics, or early bytes)."""
        if self.dest.lost or self.dest.transport is None:
            return
        if self.stubs:
            self.stubs[0].put(Chunk(bytes(data), asyncio.get_running_loop().time()))
        else:
            self.dest.transport.write(data)

    # --- data out -------------------------------------------------------------------
    def _deliver(self, item: Item) -> None:
        if item is None:
            if not self.finished:
                self.finished = True
                self.dest.close()
            return
        transport = self.dest.transport
        if not self.finished and transport is not None and not transport.is_closing():
            transport.write(item.data)

    def dest_gone(self) -> None:
        self._rewire()

    # --- the kernel relay -----------------------------------------------------------
    def _try_splice(self) -> None:
        """Hand the relay to a splicer if nothing could be overtaken by it: no toxic,
        the destination's buffer empty, both sockets open."""
        src, dst = self.source.transport, self.dest.transport
        if (
            not self._use_splice or self._splicer is not None or not self._started
            or self.stubs or self._eof or self.finished or self.source.lost or self.dest.lost
            or src is None or dst is None or src.is_closing() or dst.is_closing()
            or dst.get_write_buffer_size()
        ):
            return
        try:
            self._splicer = splice.Splicer(
                asyncio.get_running_loop(), self.source.fd(), self.dest.fd(),
                self.feed_eof, self._source_failed, self._dest_failed,
            )
        except OSError as exc:  # out of descriptors: this link keeps copying
            log.debug("proxy link %s: no splice: %s", self.direction, exc)
            self._use_splice = False
            return
        src.pause_reading()

    def _stop_splice(self, *, keep: bool = True) -> None:
        """Back to the transports; what the pipe held goes to the destination first."""
        splicer, self._splicer = self._splicer, None
        if splicer is None:
            return
        held = splicer.stop()
        transport = self.dest.transport
        if keep and held and not self.dest.lost and transport is not None:
            log.debug("proxy link %s: %d bytes from the pipe go first", self.direction, len(held))
            transport.write(held)
        self._sync_reading()

    def _source_failed(self) -> None:
        self._splicer = None
        self.source.abort()

    def _dest_failed(self) -> None:
        self._splicer = None
        self.dest.abort()

    # --- back-pressure --------------------------------------------------------------
    def queued_add(self, n: int) -> None:
        self.queued += n
        if not self._queue_full and self.queued > HIGH_WATER:
            self._queue_full = True
            self._sync_reading()

    def queued_sub(self, n: int) -> None:
        self.queued -= n
        if self._queue_full and self.queued <= LOW_WATER:
            self._queue_full = False
            self._sync_reading()

    def dest_full(self, full: bool) -> None:
        self._dest_full = full
        self._sync_reading()

    def _sync_reading(self) -> None:
        transport = self.source.transport
        if transport is None or transport.is_closing() or self._splicer is not None:
            return
        if self._queue_full or self._dest_full:
            transport.pause_reading()
        else:
            transport.resume_reading()

    # --- wiring ---------------------------------------------------------------------
    def cancel(self) -> None:
        self._stop_splice(keep=False)
        for stub in self.stubs:
            stub.cancel()

    def _stub(self, entry: ToxicEntry) -> ToxicStub:
        if entry.toxic.resets:
            self.source.set_reset_on_close()
            self.dest.set_reset_on_close()
        return ToxicStub(entry, self._deliver, self, self.rng)

    def _find(self, entry: ToxicEntry) -> ToxicStub | None:
        return next((s for s in self.stubs if s.entry is entry), None)

    def _rewire(self) -> None:
        """Point each stage at the next; pick the bare relay when there is no toxic."""
        for before, after in zip(self.stubs, self.stubs[1:], strict=False):
            before.output = after.put
        if self.stubs:
            self.stubs[-1].output = self._deliver
        feed: Callable[[int], None]
        if self.dest.lost or self.dest.transport is None:
            self._stop_splice(keep=False)
            feed = _discard
        elif self.stubs:
            self._stop_splice()
            feed = self._feed_read
        else:
            feed = self._relay
        self.source.on_read = feed  # type: ignore[method-assign]


class Connection:
    """A client accepted by a proxy, and the upstream connection opened for it."""

    def __init__(self, owner: ConnectionOwner) -> None:
        self.owner = owner
        self.client = Side(self)
        self.upstream = Side(self)
        self.links: dict[str, Link] = {}
        self._opening: asyncio.Task[None] | None = None
        self._done = False

    def side_made(self, side: Side) -> None:
        if side is self.client:
            self.owner.connections.add(self)
            self._opening = asyncio.get_running_loop().create_task(self._open())

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            host, port = split_host_port(self.owner.upstream)
            await asyncio.wait_for(
                loop.create_connection(lambda: self.upstream, host, port), 30.0
            )
        except (OSError, ValueError, TimeoutError) as exc:
            log.warning(
                "proxy %s: unable to open connection to upstream %s: %s",
                self.owner.name, self.owner.upstream, exc,
            )
            self.client.close()
            return
        if self.client.lost:
            self.upstream.abort()
            return
        use_splice = self.owner.splice
        up = Link("upstream", self.client, self.upstream, self.owner.rng, use_splice)
        down = Link("downstream", self.upstream, self.client, self.owner.rng, use_splice)
        self.links = {"upstream": up, "downstream": down}
        up.start(self.owner.chain("upstream"))
        down.start(self.owner.chain("downstream"))

    def side_lost(self, side: Side) -> None:
        if side.out_link is not None:
            side.out_link.feed_eof()
        if side.in_link is not None:
            side.in_link.dest_gone()
        if side is self.client and not self.links:
            if self._opening is not None:
                self._opening.cancel()
            self.upstream.abort()
        if self.client.lost and (self.upstream.lost or self.upstream.transport is None):
            self._finish()

    def abort(self) -> None:
        """Drop both sockets now (the proxy was disabled or deleted)."""
        if self._opening is not None:
            self._opening.cancel()
        self.client.abort()
        self.upstream.abort()
        self._finish()

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        for link in self.links.values():
            link.cancel()
        self.owner.connections.discard(self)


class ConnectionOwner:
    """What a connection needs from its proxy (kept narrow on purpose)."""

    name: str
    upstream: str
    rng: random.Random
    connections: set[Connection]
    splice: bool  # relay untoxic links inside the kernel where the platform can

    def chain(self, direction: str) -> list[ToxicEntry]:
        raise NotImplementedError


def split_host_port(address: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port), as Go's net.SplitHostPort."""
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"address {address}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError(f"address {address}: too many colons in address")
    if not port.isdigit():
        try:
            return host, socket.getservbyname(port, "tcp")
        except OSError:
            raise ValueError(f"address {address}: unknown port") from None
    number = int(port)
    if number > 65535:
        raise ValueError(f"address {address}: invalid port")
    return host, number
