"""limit_data: close the stream once `bytes` bytes have gone through it."""

from __future__ import annotations

import dataclasses

from faultlab.harness.proxy.toxics.base import Chunk, Toxic, ToxicStub, register


@dataclasses.dataclass
class Transmitted:
    """Bytes already let through on this connection (kept across updates)."""

    count: int = 0


@register
@dataclasses.dataclass
class LimitDataToxic(Toxic):
    type_name = "limit_data"
    bytes: int = 0

    def new_state(self) -> Transmitted:
        return Transmitted()

    async def pipe(self, stub: ToxicStub) -> None:
        sent: Transmitted = stub.state
        while True:
            chunk = await stub.recv()
            if chunk is None:
                stub.close()
                return
            allowed = max(self.bytes - sent.count, 0)
            data = chunk.data[:allowed]
            if data:
                stub.send(Chunk(data, chunk.timestamp))
                sent.count += len(data)
            if self.bytes - sent.count <= 0:
                stub.close()
                return
