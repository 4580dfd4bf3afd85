"""reset_peer: after the first data (or the end) and `timeout` ms, close with a TCP RST."""

from __future__ import annotations

import dataclasses

from faultlab.harness.proxy.toxics.base import Toxic, ToxicStub, register


@register
@dataclasses.dataclass
class ResetPeerToxic(Toxic):
    type_name = "reset_peer"
    resets = True  # the link sets SO_LINGER 0 on both sockets, so close sends RST
    timeout: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        first = await stub.recv()
        if not await stub.sleep(self.timeout / 1000):
            stub.unrecv(first)
            return
        stub.close()
