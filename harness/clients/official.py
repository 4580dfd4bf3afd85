"""The official JS client (socket.io-client) as a simulated chat client.

What users of the real client report (a retry after a reconnect storing a duplicate,
socket.io #5334; no recovery before any event, #5538) must be tested on the real
client. One node worker per run (`js/worker.mjs`) runs many `io()` sockets; each
`OfficialClient` is the handle of one of them and records what the worker reports
into the run's `History`, in the order the worker observed it.

The worker is a supervised child (stdin closed, stdout/stderr to its log), so
commands and events travel over one loopback TCP connection as JSON lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import orjson

from faultlab.harness.clients.base import ClientConfig
from faultlab.harness.clients.receive import ShownSet
from faultlab.harness.history import History
from faultlab.harness.processes import Child, Supervisor

WORKER_JS = Path(__file__).with_name("js") / "worker.mjs"
_WEAK_LEVELS = frozenset({"at-most-once", "buffered"})


class WorkerError(RuntimeError):
    """The worker refused a command (the message says why) or is gone."""


class OfficialWorker:
    """One node process hosting every official-client user of a run."""

    def __init__(
        self,
        supervisor: Supervisor,
        history: History,
        log_path: Path,
        *,
        node: str | None = None,
        deadline: float = 15.0,
    ) -> None:
        self.supervisor = supervisor
        self.history = history
        self.log_path = log_path
        self.node = node
        self.deadline = deadline
        self.child: Child | None = None
        self.clients: dict[str, OfficialClient] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._pump_task: asyncio.Task[None] | None = None
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._seq = 0
        self._gone: str | None = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> Self:
        """Spawn the worker, connect to it, and start reading its events."""
        node = self.node or shutil.which("node")
        if node is None:
            raise WorkerError("node is not on PATH: the official client driver needs node >= 18")
        self.child = await self.supervisor.spawn(
            "js-worker", [node, str(WORKER_JS)], self.log_path, deadline=self.deadline
        )
        assert self.child.port is not None
        reader, self._writer = await asyncio.open_connection("127.0.0.1", self.child.port)
        self._pump_task = asyncio.create_task(self._pump(reader))
        return self

    def client(self, config: ClientConfig, *, start_deadline: float = 10.0) -> OfficialClient:
        """A new (not yet started) user on this worker."""
        if config.id in self.clients:
            raise ValueError(f"client {config.id} already exists on this worker")
        client = OfficialClient(self, config, start_deadline=start_deadline)
        self.clients[config.id] = client
        return client

    def check_alive(self) -> None:
        """Raise `WorkerError` (with the worker's log tail) if the worker is gone."""
        if self._gone is not None:
            raise WorkerError(self._gone)

    def post(self, op: str, **fields: Any) -> asyncio.Future[Any]:
        """Send one command; the future holds the worker's reply (or its refusal)."""
        self.check_alive()
        assert self._writer is not None, "start() the worker first"
        self._seq += 1
        q = self._seq
        reply = asyncio.get_running_loop().create_future()
        self._replies[q] = reply
        self._writer.write(orjson.dumps({"q": q, "op": op, **fields}) + b"\n")
        return reply

    async def request(self, op: str, **fields: Any) -> Any:
        """Send one command and wait for the worker's reply (raising its refusal)."""
        return await self.post(op, **fields)

    async def stats(self) -> dict[str, int]:
        """The worker's own figures: clients, RSS, CPU time (for benchmarks)."""
        result: dict[str, int] = await self.request("stats")
        return result

    async def close(self) -> None:
        """End every user (without `leave`), then the worker; safe to call twice."""
        if self._gone is None:
            await asyncio.gather(
                *(c.close() for c in list(self.clients.values()) if not c.closed),
                return_exceptions=True,
            )
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None
        if self.child is not None and self.child.running:
            try:
                await self.child.wait_exit(5.0)
            except TimeoutError:
                await self.child.kill()
        if self._pump_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump_task
            self._pump_task = None

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        """Read batches of events (one JSON array a line) and dispatch them in order."""
        buffer = bytearray()
        try:
            while chunk := await reader.read(1 << 16):
                buffer += chunk
                end = buffer.rfind(b"\n")
                if end < 0:
                    continue
                lines = bytes(buffer[:end]).split(b"\n")
                del buffer[: end + 1]
                for line in lines:
                    for event in orjson.loads(line):
                        self._dispatch(event)
        except ConnectionError:
            pass
        finally:
            self._worker_gone()

    def _dispatch(self, event: list[Any]) -> None:
        if event[0] == "reply":
            _, q, ok, value = event
            reply = self._replies.pop(q, None) if q is not None else None
            if reply is not None and not reply.done():
                if ok:
                    reply.set_result(value)
                else:
                    reply.set_exception(WorkerError(value))
            return
        client = self.clients.get(event[1])
        if client is not None:
            client.on_event(event)

    def _worker_gone(self) -> None:
        """The connection ended: fail every waiter and mark every user disconnected."""
        why = "the js-worker exited"
        if self.child is not None:
            tail = "\n".join(f"    {line}" for line in self.child.log_tail(10))
            why = f"the js-worker exited; log {self.log_path}, last lines:\n{tail}"
        self._gone = why
        for reply in self._replies.values():
            if not reply.done():
                reply.set_exception(WorkerError(why))
        self._replies.clear()
        for client in self.clients.values():
            client.worker_gone()


class OfficialClient:
    """One chat user driven by the official client in the worker (a `ChatClient`)."""

    def __init__(
        self, worker: OfficialWorker, config: ClientConfig, *, start_deadline: float = 10.0
    ) -> None:
        self.worker = worker
        self.config = config
        self.history = worker.history
        self.start_deadline = start_deadline
        self.connected = False
        self.left = False
        self.closed = False
        self.sid: str | None = None
        self.resume_from = 0
        self.last_error: str | None = None
        self._sends = 0
        self._pending: set[str] = set()
        self._shown = ShownSet(0)
        self._connected = asyncio.Event()
        self._handlers: dict[str, Callable[[list[Any]], None]] = {
            "connect": self._on_connect,
            "disconnect": self._on_disconnect,
            "attempt": self._on_attempt,
            "ack": self._on_settled,
            "reject": self._on_settled,
            "give_up": self._on_settled,
            "recv": self._on_recv,
            "session_start": self._on_session_start,
            "connect_error": self._on_connect_error,
        }

    # -- the ChatClient interface --

    async def start(self) -> None:
        """First page load: a session from offset 0, connected within the deadline."""
        self.history.record(self.config.id, "session_start", resume_from=0)
        await self.worker.request("open", c=self.config.id, config=self._wire_config())
        try:
            await asyncio.wait_for(self._connected.wait(), self.start_deadline)
        except TimeoutError:
            raise ConnectionError(
                f"{self.config.id}: not connected to {self.config.url} within "
                f"{self.start_deadline:.1f}s (last error: {self.last_error or 'none'})"
            ) from None

    async def send(self, content: str) -> str:
        if self.left or self.closed:
            raise WorkerError(f"{self.config.id} has left; it cannot send")
        self.worker.check_alive()
        msg = f"{self.config.id}-{self._sends}"
        offset = self._client_offset()
        self._sends += 1
        self.history.record(self.config.id, "send", msg=msg, content=content, client_offset=offset)
        self._pending.add(msg)
        # not awaited: a paced workload must not wait for the worker's turn
        reply = self.worker.post(
            "send", c=self.config.id, msg=msg, content=content, client_offset=offset
        )
        reply.add_done_callback(lambda r: self._send_refused(msg, r))
        return msg

    async def drop_transport(self) -> None:
        """`socket.io.engine.close()`: no Socket.IO DISCONNECT; the client reconnects."""
        await self.worker.request("drop", c=self.config.id)

    async def go_offline(self, seconds: float) -> None:
        """`socket.disconnect()`, then `socket.connect()` after `seconds` (in the worker)."""
        await self.worker.request("offline", c=self.config.id, seconds=seconds)

    async def refresh(self, persist_offset: bool) -> None:
        """A new socket (new Manager) from the persisted offset or 0; pending sends end."""
        self.sid = None
        await self.worker.request("refresh", c=self.config.id, persist=persist_offset)

    async def leave(self) -> None:
        self.history.record(self.config.id, "leave")
        self.left = True
        await self.worker.request("leave", c=self.config.id)

    def pending(self) -> int:
        return len(self._pending)

    def shown(self) -> set[int]:
        """The live set (do not mutate): shown offsets; ids <= resume_from count as shown."""
        return self._shown

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(WorkerError):
            await self.worker.request("close", c=self.config.id)
        self.connected = False

    # -- events from the worker, recorded in the order the worker saw them --

    def on_event(self, event: list[Any]) -> None:
        self._handlers[event[0]](event)

    def worker_gone(self) -> None:
        if self.connected:
            self.history.record(self.config.id, "disconnect", reason="js-worker exited")
        self.connected = False
        self._connected.clear()

    def _on_connect(self, event: list[Any]) -> None:
        _, cid, sid, recovered = event
        self.sid = sid
        self.connected = True
        self._connected.set()
        self.history.record(cid, "connect", sid=sid, recovered=recovered)

    def _on_disconnect(self, event: list[Any]) -> None:
        self.connected = False
        self._connected.clear()
        self.history.record(event[1], "disconnect", reason=event[2])

    def _on_attempt(self, event: list[Any]) -> None:
        _, cid, msg, n = event
        self.history.record(cid, "attempt", msg=msg, n=n)
        if self.config.level in _WEAK_LEVELS:
            self._pending.discard(msg)

    def _on_settled(self, event: list[Any]) -> None:
        op, cid, msg, *detail = event
        self._pending.discard(msg)
        if op == "ack":
            self.history.record(cid, "ack", msg=msg)
        elif op == "reject":
            self.history.record(cid, "reject", msg=msg, error=detail[0])
        else:
            self.history.record(cid, "give_up", msg=msg, reason=detail[0])

    def _on_recv(self, event: list[Any]) -> None:
        _, cid, content, server_offset, csr_offset, shown = event
        record = self.history.record
        record(cid, "recv", content=content, server_offset=server_offset, csr_offset=csr_offset)
        if shown:
            record(cid, "show", content=content, server_offset=server_offset)
            if type(server_offset) is int:
                set.add(self._shown, server_offset)

    def _on_session_start(self, event: list[Any]) -> None:
        self.resume_from = event[2]
        self._shown = ShownSet(event[2] if type(event[2]) is int else 0)
        self.history.record(event[1], "session_start", resume_from=self.resume_from)

    def _on_connect_error(self, event: list[Any]) -> None:
        self.last_error = event[2]

    # -- helpers --

    def _send_refused(self, msg: str, reply: asyncio.Future[Any]) -> None:
        """A send the worker did not take is given up, so the history stays true."""
        if reply.cancelled() or reply.exception() is None:
            return
        self._pending.discard(msg)
        self.history.record(
            self.config.id, "give_up", msg=msg, reason=f"driver refused: {reply.exception()}"
        )

    def _client_offset(self) -> str | None:
        """exactly-once only: `{sid}-{counter}` as the tutorial, or a random one."""
        if self.config.level != "exactly-once":
            return None
        if self.config.offsets == "random":
            return uuid.uuid4().hex
        return f"{self.sid or self.config.id}-{self._sends}"

    def _wire_config(self) -> dict[str, Any]:
        c = self.config
        return {
            "url": c.url, "level": c.level, "receive": c.receive, "recovery": c.recovery,
            "transport": c.transport, "ack_timeout": c.ack_timeout, "retries": c.retries,
            "reconnect_delay": c.reconnect_delay, "connect_timeout": c.connect_timeout,
        }

