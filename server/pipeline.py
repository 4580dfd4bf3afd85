"""Group commit and the ordered broadcast of committed rows, on one task.

Why one task: every committed row must reach every connected client exactly
once and in id order, even when a handler fails after the commit, and a client
finishing its catch-up must not miss or reorder a row broadcast meanwhile. So
the broadcast is driven from the commit, not from handlers, and the last step
of every catch-up (the rows after its cursor, then entering the live room) runs
on the same task, between two batches, where no broadcast can interleave.

Per batch: one INSERT (with RETURNING only when it holds several rows: one row's id
is the cursor's `lastrowid`) and one COMMIT, then per new row the
`after_commit` and `before_broadcast` failpoints, the broadcast (all the batch's
rows in one write per socket unless a `before_broadcast` failpoint is armed or a
mutation is active), and finally the acks (this server acks after it broadcasts):
each insert is settled by a plain callback on this task, so an ack costs no
future and no scheduled wake-up.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from faultlab.server.emitter import Emitter, Row
from faultlab.server.failpoints import FailpointError, Failpoints
from faultlab.server.mutations import Mutation
from faultlab.server.store import Store, StoreError

log = logging.getLogger("faultlab.server.pipeline")

TAIL = 4096
"""Recently broadcast rows kept in memory, so a finishing catch-up rarely reads the store."""
STORE_CHUNK = 500


Settle = Callable[[int | None, BaseException | None, bool], None]
"""Called once per insert, on the pipeline task after its broadcast: (row id or None,
error, whether its `reply` went out with the sender's copy of the batch)."""


@dataclass
class Insert:
    content: str
    client_offset: str | None
    then: Settle
    reply: tuple[str, bytes] | None = None
    """(sender's engine.io sid, framed ack): sent with its copy of the broadcast when it can be."""
    settled: bool = False

    def settle(
        self, row_id: int | None, exc: BaseException | None = None, replied: bool = False
    ) -> None:
        if self.settled:
            return
        self.settled = True
        try:
            self.then(row_id, exc, replied)
        except Exception:
            log.exception("settling the insert of client_offset=%r failed", self.client_offset)


def _resolving(future: asyncio.Future[int | None]) -> Settle:
    def then(row_id: int | None, exc: BaseException | None, replied: bool) -> None:
        if future.done():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(row_id)

    return then


@dataclass
class Join:
    sid: str
    cursor: int | None
    future: asyncio.Future[bool]
    before: Callable[[], Awaitable[None]] | None = None


@dataclass
class _Held:
    """A row whose broadcast the `swap_broadcasts` mutation holds back."""

    row: Row | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass
class Pipeline:
    store: Store
    emitter: Emitter
    failpoints: Failpoints
    mutation: Mutation
    batch_max: int = 256
    last_id: int = 0
    tail_floor: int = 0
    _inserts: deque[Insert] = field(default_factory=deque)
    _joins: deque[Join] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _tail_ids: deque[int] = field(default_factory=deque)
    _tail_rows: deque[Row] = field(default_factory=deque)
    _task: asyncio.Task[None] | None = None
    _busy: bool = False
    _held: _Held = field(default_factory=_Held)

    async def start(self) -> None:
        self.last_id = self.tail_floor = await self.store.max_id()
        self._task = asyncio.create_task(self._run(), name="faultlab-pipeline")

    @property
    def idle(self) -> bool:
        return not self._inserts and not self._joins and not self._busy

    async def drain(self, deadline: float) -> bool:
        """Wait until every queued insert is committed and broadcast (graceful shutdown)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline
        while not self.idle and loop.time() < end:
            await asyncio.sleep(0.01)
        return self.idle

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for item in self._inserts:
            item.settle(None, StoreError("server stopping"))
        self._inserts.clear()

    def submit(self, content: str, client_offset: str | None) -> asyncio.Future[int | None]:
        """Queue an insert; the future gives the row id (None: already stored) once broadcast."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self.submit_then(content, client_offset, _resolving(future))
        return future

    def submit_then(
        self,
        content: str,
        client_offset: str | None,
        then: Settle,
        reply: tuple[str, bytes] | None = None,
    ) -> None:
        """Queue an insert; `then` is called on the pipeline task once it is broadcast or failed.

        Without a future, nothing is scheduled per insert. `reply` (the sender's
        engine.io sid, framed ack) rides in the sender's write of the broadcast when the insert
        succeeded and that write goes out directly; `then` is told whether it did.
        """
        self._inserts.append(Insert(content, client_offset, then, reply))
        self._wake.set()

    async def join(
        self, sid: str, cursor: int | None, before: Callable[[], Awaitable[None]] | None = None
    ) -> bool:
        """Send `sid` every broadcast row after `cursor` (None: none), then add it to the live room.

        `before` runs after those rows and before the socket goes live (the CONNECT
        reply of a recovered socket). False when the socket went away meanwhile.
        """
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._joins.append(Join(sid, cursor, future, before))
        self._wake.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._joins or self._inserts:
                self._busy = True
                try:
                    while self._joins:
                        await self._do_join(self._joins.popleft())
                    if self._inserts:
                        batch = [
                            self._inserts.popleft()
                            for _ in range(min(self.batch_max, len(self._inserts)))
                        ]
                        await self._commit(batch)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("pipeline step failed")
                finally:
                    self._busy = False

    # Catch-up, last step.

    def rows_after_in_tail(self, cursor: int) -> list[Row] | None:
        """Broadcast rows after `cursor` from memory, or None when the tail does not reach back."""
        if cursor < self.tail_floor:
            return None
        return list(self._tail_rows)[bisect.bisect_right(self._tail_ids, cursor) :]

    async def _do_join(self, join: Join) -> None:
        try:
            if not self.emitter.present(join.sid):
                join.future.set_result(False)
                return
            if join.cursor is not None:
                cursor = join.cursor
                rows = self.rows_after_in_tail(cursor)
                while rows is None:
                    chunk = await self.store.rows_after(cursor, self.last_id, STORE_CHUNK)
                    if not chunk:
                        rows = []
                        break
                    await self.emitter.send(join.sid, chunk)
                    cursor = chunk[-1][0]
                    rows = self.rows_after_in_tail(cursor)
                await self.emitter.send(join.sid, rows)
            if join.before is not None:
                await join.before()
            if not self.emitter.present(join.sid):
                join.future.set_result(False)
                return
            self.emitter.join_live(join.sid)
            join.future.set_result(True)
        except Exception as exc:
            log.error("catch-up of %s failed: %s", join.sid, exc)
            if not join.future.done():
                join.future.set_exception(exc)

    # Group commit.

    async def _commit(self, batch: list[Insert]) -> None:
        guessed: list[Row] = []
        if self.mutation.is_("broadcast_before_commit"):
            guessed = [(self.last_id + 1 + i, item.content) for i, item in enumerate(batch)]
            await self.emitter.broadcast(guessed)
        try:
            ids = await self.store.insert_batch([(i.content, i.client_offset) for i in batch])
        except StoreError as exc:
            for item in batch:
                log.error("insert failed, not acked: client_offset=%r: %s", item.client_offset, exc)
                item.settle(None, exc)
            return
        new_rows: list[Row] = []
        failed: set[int] = set()
        after_commit_armed = self._armed("after_commit")
        for index, (item, row_id) in enumerate(zip(batch, ids, strict=True)):
            if row_id is None:
                continue
            new_rows.append((row_id, item.content))
            if not after_commit_armed:
                continue
            try:
                await self.failpoints.hit("after_commit")
            except FailpointError as exc:
                log.error(
                    "after_commit failed, not acked: client_offset=%r id=%d: %s",
                    item.client_offset,
                    row_id,
                    exc,
                )
                failed.add(index)
        mutated = self.mutation.name is not None
        if mutated:
            new_rows += await self._phantoms(len(new_rows))
        replies: dict[str, bytes] = {}
        for index, item in enumerate(batch):
            if item.reply is not None and index not in failed:
                sid, frame = item.reply
                replies[sid] = replies.get(sid, b"") + frame
        replied = await self._publish(new_rows, already_sent=bool(guessed), replies=replies)
        for index, (item, row_id) in enumerate(zip(batch, ids, strict=True)):
            if index in failed:
                item.settle(None, FailpointError("after_commit"))
            else:
                item.settle(row_id, replied=item.reply is not None and item.reply[0] in replied)
        if mutated:
            await self._drop_after_ack(ids)

    async def _phantoms(self, count: int) -> list[Row]:
        rows: list[Row] = []
        for _ in range(count):
            if self.mutation.pick("phantom_row"):
                content = f"phantom-{self.last_id + len(rows) + 1}"
                try:
                    (row_id,) = await self.store.insert_batch([(content, None)])
                except StoreError:
                    continue
                if row_id is not None:
                    rows.append((row_id, content))
        return rows

    async def _drop_after_ack(self, ids: list[int | None]) -> None:
        for row_id in ids:
            if row_id is not None and self.mutation.pick("drop_after_ack"):
                await asyncio.sleep(0.05)
                try:
                    await self.store.delete(row_id)
                except StoreError as exc:
                    log.error("drop_after_ack: %s", exc)

    # Ordered broadcast.

    async def _publish(
        self,
        rows: list[Row],
        *,
        already_sent: bool = False,
        replies: dict[str, bytes] | None = None,
    ) -> set[str]:
        """Broadcast committed rows in order; the engine.io sids whose `replies` went along."""
        if not already_sent and self.mutation.name is None and not self._armed("before_broadcast"):
            replied = await self.emitter.broadcast(rows, replies=replies)
            for row in rows:
                self._remember(row)
            return replied
        for row in rows:
            backoff = 0.01
            while True:
                try:
                    await self.failpoints.hit("before_broadcast")
                    break
                except FailpointError as exc:
                    log.error("before_broadcast failed for id %d, retrying: %s", row[0], exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
            if not already_sent:
                await self._emit(row)
            self._remember(row)
        return set()

    def _armed(self, name: str) -> bool:
        """A failpoint is armed: then each row passes it alone, before its own broadcast."""
        return name in self.failpoints.armed

    def _remember(self, row: Row) -> None:
        self.last_id = max(self.last_id, row[0])
        self._tail_ids.append(row[0])
        self._tail_rows.append(row)
        if len(self._tail_ids) > TAIL:
            self.tail_floor = self._tail_ids.popleft()
            self._tail_rows.popleft()

    async def _emit(self, row: Row) -> None:
        """Broadcast one row; the mutations that corrupt broadcasts act here."""
        m = self.mutation
        if m.name is None:
            await self.emitter.broadcast([row])
        elif m.pick("skip_broadcast"):
            return
        elif m.pick("double_broadcast"):
            await self.emitter.broadcast([row, row])
        elif m.is_("corrupt_one_client") and m.pick("corrupt_one_client"):
            victims = self.emitter.live_sids()[:1]
            if not victims:
                await self.emitter.broadcast([row])
                return
            await self.emitter.broadcast([row], skip_sid=victims[0])
            await self.emitter.send(victims[0], [(row[0], row[1] + " (corrupted)")])
        elif m.is_("swap_broadcasts"):
            await self._swap(row)
        else:
            await self.emitter.broadcast([row])

    async def _swap(self, row: Row) -> None:
        held = self._held
        if held.row is not None:
            await self.emitter.broadcast([row, held.row])
            self._release_timer()
            held.row = None
        elif self.mutation.pick("swap_broadcasts"):
            held.row = row
            held.timer = asyncio.get_running_loop().call_later(1.0, self._flush_held)
        else:
            await self.emitter.broadcast([row])

    def _release_timer(self) -> None:
        if self._held.timer is not None:
            self._held.timer.cancel()
            self._held.timer = None

    def _flush_held(self) -> None:
        row, self._held.row, self._held.timer = self._held.row, None, None
        if row is not None:
            task = asyncio.get_running_loop().create_task(self.emitter.broadcast([row]))
            task.add_done_callback(lambda t: t.exception())
