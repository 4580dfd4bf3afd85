"""latency: delay every chunk by `latency` ± `jitter` milliseconds."""

from __future__ import annotations

import dataclasses
import random

from faultlab.harness.proxy.toxics.base import Toxic, ToxicStub, register


@register
@dataclasses.dataclass
class LatencyToxic(Toxic):
    type_name = "latency"
    latency: int = 0
    jitter: int = 0

    def delay(self, rng: random.Random) -> float:
        """Seconds; jitter is uniform in [-jitter, jitter), as in Toxiproxy."""
        ms = self.latency
        if self.jitter > 0:
            ms += rng.randrange(self.jitter * 2) - self.jitter
        return ms / 1000

    async def pipe(self, stub: ToxicStub) -> None:
        while True:
            chunk = await stub.recv()
            if chunk is None:
                stub.close()
                return
            # measured from when the chunk was read, so delays do not add up
            wait = self.delay(stub.rng) - (stub.now() - chunk.timestamp)
            if not await stub.sleep(wait):
                stub.send(chunk)  # interrupted: pass it on now, never drop it
                return
            chunk.timestamp += wait
            stub.send(chunk)
