"""Zero-copy relay of one direction: socket -> kernel pipe -> socket with `os.splice`.

A link with no toxic on it does not need to see its bytes, so it can leave them in the
kernel: they are moved from the source socket into a pipe and from the pipe into the
destination socket without being copied into (or out of) Python. Linux only; the link
keeps its userspace relay where `os.splice` is missing or a pipe cannot be made.

The splicer watches duplicated descriptors of the two sockets (asyncio refuses a
reader on a descriptor a transport owns), reads only when its pipe is empty, and
waits for the destination to become writable when the pipe cannot be emptied — so
a slow reader pauses its writer, as the transport's own write buffer would.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable

AVAILABLE = hasattr(os, "splice")
PIPE_SIZE = 1024 * 1024  # bytes per splice; the kernel may grant less (pipe-max-size)
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


class Splicer:
    """Moves bytes from `src` to `dst` until stopped, the source ends, or a socket fails.

    `on_eof()` runs when the source ends; `on_src_error()` / `on_dst_error()` when a
    read / write fails. The splicer has stopped itself before any of them runs.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        src: int,
        dst: int,
        on_eof: Callable[[], None],
        on_src_error: Callable[[], None],
        on_dst_error: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._src = src
        self._dst = dst
        self._on_eof = on_eof
        self._on_src_error = on_src_error
        self._on_dst_error = on_dst_error
        self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # over the pipe quota the default size works
            fcntl.fcntl(self._pipe_w, _SETPIPE_SZ, PIPE_SIZE)
        self._size = fcntl.fcntl(self._pipe_w, _GETPIPE_SZ)
        self._pending = 0  # bytes in the pipe, not yet in the destination
        self._stopped = False
        loop.add_reader(src, self._readable)

    def _readable(self) -> None:
        try:
            n = os.splice(self._src, self._pipe_w, self._size, flags=_FLAGS)
        except BlockingIOError:
            return
        except OSError:
            self.stop()
            self._on_src_error()
            return
        if n == 0:
            self.stop()
            self._on_eof()
            return
        self._pending = n
        if self._flush() and self._pending:
            self._loop.remove_reader(self._src)
            self._loop.add_writer(self._dst, self._writable)

    def _writable(self) -> None:
        if self._flush() and not self._pending:
            self._loop.remove_writer(self._dst)
            self._loop.add_reader(self._src, self._readable)

    def _flush(self) -> bool:
        """Move what the pipe holds into the destination; False if the splicer failed."""
        while self._pending:
            try:
                self._pending -= os.splice(self._pipe_r, self._dst, self._pending, flags=_FLAGS)
            except BlockingIOError:
                return True
            except OSError:
                self.stop()
                self._on_dst_error()
                return False
        return True

    def stop(self) -> bytes:
        """Stop watching both sockets and close the pipe; returns what the pipe still
        held (read from the source, not yet written to the destination)."""
        if self._stopped:
            return b""
        self._stopped = True
        self._loop.remove_reader(self._src)
        self._loop.remove_writer(self._dst)
        parts = []
        while self._pending > 0:
            try:
                part = os.read(self._pipe_r, self._pending)
            except BlockingIOError:
                break
            if not part:
                break
            parts.append(part)
            self._pending -= len(part)
        os.close(self._pipe_r)
        os.close(self._pipe_w)
        return b"".join(parts)
