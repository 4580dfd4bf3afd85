"""timeout: drop all data, and close after `timeout` ms (0 = hold the link forever)."""

from __future__ import annotations

import dataclasses

from faultlab.harness.proxy.toxics.base import Toxic, ToxicStub, register


@register
@dataclasses.dataclass
class TimeoutToxic(Toxic):
    type_name = "timeout"
    timeout: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        deadline = stub.now() + self.timeout / 1000 if self.timeout > 0 else None
        while True:
            try:
                chunk = await stub.recv(deadline)
            except TimeoutError:
                stub.close()
                return
            if chunk is None:
                stub.close()
                return
            # the data is dropped on purpose: that is the fault

    def cleanup(self, stub: ToxicStub) -> None:
        """Data was dropped, so the stream is broken: removing the toxic closes it."""
        stub.close()
