"""slow_close: delay the close of the stream by `delay` milliseconds."""

from __future__ import annotations

import dataclasses

from faultlab.harness.proxy.toxics.base import Toxic, ToxicStub, register


@register
@dataclasses.dataclass
class SlowCloseToxic(Toxic):
    type_name = "slow_close"
    delay: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        while True:
            chunk = await stub.recv()
            if chunk is None:
                if not await stub.sleep(self.delay / 1000):
                    stub.unrecv(None)  # keep the close for whoever comes next
                    return
                stub.close()
                return
            stub.send(chunk)
