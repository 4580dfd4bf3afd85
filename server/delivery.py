"""The server half of the delivery levels (DESIGN §3.2) and server delivery on connect.

- every level: validate, insert, broadcast from the commit log, ack after that;
- exactly-once: the UNIQUE client offset makes a retry a duplicate, acked, not stored;
- a failed insert or an error after the commit is not acked (outcome unknown: the
  client may retry, and exactly-once makes that safe);
- a connection that was not recovered gets every row with id > auth.serverOffset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from faultlab.server.config import ServerConfig
from faultlab.server.failpoints import FailpointError, Failpoints
from faultlab.server.mutations import Mutation
from faultlab.server.pipeline import STORE_CHUNK, Pipeline
from faultlab.server.receive import Ack
from faultlab.server.recovery import RecoveringServer
from faultlab.server.store import Store, StoreError
from faultlab.server.validation import Message, Rejection, parse_server_offset, validate_message

log = logging.getLogger("faultlab.server.delivery")


@dataclass
class _Hold:
    """A message the `commit_out_of_order` mutation acked early and commits late."""

    content: str
    client_offset: str | None
    timer: asyncio.TimerHandle


@dataclass
class ChatDelivery:
    """The `connect` and `chat message` handlers of the reference chat."""

    config: ServerConfig
    sio: RecoveringServer
    store: Store
    pipeline: Pipeline
    failpoints: Failpoints
    mutation: Mutation
    in_flight: int = 0
    _syncs: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _cursors: dict[str, int] = field(default_factory=dict)
    _held: dict[str, _Hold] = field(default_factory=dict)
    _dropped: set[str] = field(default_factory=set)
    _background: set[asyncio.Task[Any]] = field(default_factory=set)

    def register(self) -> None:
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("chat message", self.on_message)
        self.sio.after_connect = self.after_connect

    # Messages.

    def take_now(self, sid: str, args: list[Any], ack: Ack | None) -> bool:
        """The receive shortcut's `chat message`: queue a valid message without a task.

        Declines (False) whatever needs the full handler, which then gets the event
        through python-socketio: a message it rejects, an armed `before_insert`
        failpoint, an active mutation. A taken message is acked by `ack` (None when
        the client asked for no ack) once committed and broadcast, or not at all if
        the insert failed, exactly as `on_message` would; the ack goes in the same
        write as the sender's copy of the broadcast when it can.
        """
        if self.mutation.name is not None or "before_insert" in self.failpoints.armed:
            return False
        checked = validate_message(
            args, exactly_once=self.config.exactly_once, max_content=self.config.max_content
        )
        if isinstance(checked, Rejection):
            return False
        self.in_flight += 1

        def then(row_id: int | None, exc: BaseException | None, replied: bool) -> None:
            self.in_flight -= 1
            if exc is not None:
                log.error(
                    "not acked: client_offset=%r from %s: %s", checked.client_offset, sid, exc
                )
            elif ack is not None and not replied:
                ack.send()

        reply = (ack.eio_sid, ack.frame) if ack is not None else None
        self.pipeline.submit_then(checked.content, checked.client_offset, then, reply)
        return True

    async def on_message(self, sid: str, *args: Any) -> Any:
        """Returns the ack payload; `sio.not_handled` means: send no ack."""
        checked = validate_message(
            args, exactly_once=self.config.exactly_once, max_content=self.config.max_content
        )
        if isinstance(checked, Rejection):
            log.warning("rejected from %s: %s: %s", sid, checked.code, checked.detail)
            return checked.as_ack()
        self.in_flight += 1
        try:
            await self.failpoints.hit("before_insert")
            if self.mutation.name is not None:
                return await self._mutated(sid, checked)
            await self.pipeline.submit(checked.content, checked.client_offset)
            return None
        except (StoreError, FailpointError) as exc:
            log.error("not acked: client_offset=%r from %s: %s", checked.client_offset, sid, exc)
            return self.sio.not_handled
        finally:
            self.in_flight -= 1

    async def _mutated(self, sid: str, msg: Message) -> Any:
        m = self.mutation
        if m.is_("drop_silently"):
            if msg.content in self._dropped or m.pick("drop_silently"):
                self._dropped.add(msg.content)
                log.warning("mutation drop_silently: dropped %r", msg.client_offset)
                return self.sio.not_handled
        elif m.is_("ack_before_commit"):
            self._detach(self.pipeline.submit(msg.content, msg.client_offset))
            return None
        elif m.is_("double_insert") and m.pick("double_insert"):
            second = f"{msg.client_offset}#2" if msg.client_offset else None
            first = self.pipeline.submit(msg.content, msg.client_offset)
            await asyncio.gather(first, self.pipeline.submit(msg.content, second))
            return None
        elif m.is_("commit_out_of_order"):
            return await self._out_of_order(sid, msg)
        await self.pipeline.submit(msg.content, msg.client_offset)
        return None

    async def _out_of_order(self, sid: str, msg: Message) -> Any:
        held = self._held.pop(sid, None)
        if held is None and self.mutation.pick("commit_out_of_order"):
            loop = asyncio.get_running_loop()
            timer = loop.call_later(1.0, self._release, sid)
            self._held[sid] = _Hold(msg.content, msg.client_offset, timer)
            return None
        await self.pipeline.submit(msg.content, msg.client_offset)
        if held is not None:
            held.timer.cancel()
            self._detach(self.pipeline.submit(held.content, held.client_offset))
        return None

    def _release(self, sid: str) -> None:
        held = self._held.pop(sid, None)
        if held is not None:
            self._detach(self.pipeline.submit(held.content, held.client_offset))

    def _detach(self, future: asyncio.Future[Any]) -> None:
        future.add_done_callback(lambda f: f.cancelled() or f.exception())

    # Connections.

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> bool:
        offset = self.sio.recovered(sid)
        if offset is not None:
            joined = await self.pipeline.join(sid, int(offset) if offset.isdigit() else 0)
            log.info("%s recovered from offset %s (live: %s)", sid, offset, joined)
            return True
        cursor, complaint = parse_server_offset(auth, self.pipeline.last_id)
        if complaint:
            log.warning("%s: %s", sid, complaint)
        self._cursors[sid] = cursor
        self.sio.set_origin(sid, str(cursor))
        return True

    async def after_connect(self, sid: str) -> None:
        cursor = self._cursors.pop(sid, None)
        if cursor is None or not self.pipeline.emitter.present(sid):
            return
        task = asyncio.create_task(self._sync(sid, cursor), name=f"sync-{sid}")
        self._syncs[sid] = task
        task.add_done_callback(lambda _t, s=sid: self._syncs.pop(s, None))

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._cursors.pop(sid, None)
        task = self._syncs.pop(sid, None)
        if task is not None:
            task.cancel()
        log.info("%s disconnected: %s", sid, reason)

    async def _sync(self, sid: str, cursor: int) -> None:
        """Server delivery: every row with id > cursor, then live, without a gap or a repeat.

        The bulk comes from the store here, concurrently with broadcasts (the socket
        is not live yet); the pipeline sends the last rows and makes it live.
        """
        m = self.mutation
        try:
            if m.is_("no_sync"):
                await self.pipeline.join(sid, None)
                return
            if m.is_("sync_from_ge") and cursor > 0:
                cursor -= 1
            limit = 1 if m.is_("truncated_sync") else None
            sent = 0
            while self.pipeline.rows_after_in_tail(cursor) is None:
                chunk = await self.store.rows_after(cursor, self.pipeline.last_id, STORE_CHUNK)
                if not chunk:
                    break
                if limit is not None:
                    chunk = chunk[: limit - sent]
                await self.pipeline.emitter.send(sid, chunk)
                sent += len(chunk)
                cursor = chunk[-1][0]
                if limit is not None and sent >= limit:
                    break
            await self.failpoints.hit("during_sync")
            if limit is not None:
                tail = self.pipeline.rows_after_in_tail(cursor) or []
                if sent < limit and tail:
                    await self.pipeline.emitter.send(sid, tail[:1])
                await self.pipeline.join(sid, None)
                return
            await self.pipeline.join(sid, cursor)
        except asyncio.CancelledError:
            raise
        except (StoreError, FailpointError) as exc:
            log.error("catch-up of %s failed, closing its transport to retry: %s", sid, exc)
            eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
            if eio_sid is not None:
                with contextlib.suppress(Exception):
                    await self.sio.eio.disconnect(eio_sid)
        except Exception:
            log.exception("catch-up of %s failed", sid)
