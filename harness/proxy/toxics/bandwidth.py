"""bandwidth: limit a stream to `rate` KB/s (1 KB = 1000 bytes, as in Toxiproxy)."""

from __future__ import annotations

import dataclasses

from faultlab.harness.proxy.toxics.base import Chunk, Toxic, ToxicStub, register


@register
@dataclasses.dataclass
class BandwidthToxic(Toxic):
    type_name = "bandwidth"
    rate: int = 0

    async def pipe(self, stub: ToxicStub) -> None:
        debt = 0.0  # seconds this stream is ahead of the allowed rate
        while True:
            chunk = await stub.recv()
            if chunk is None:
                stub.close()
                return
            if self.rate <= 0:  # unlimited (Toxiproxy loops forever on rate 0)
                stub.send(chunk)
                continue
            debt += len(chunk.data) / (self.rate * 1000)
            data, step = chunk.data, self.rate * 100
            while len(data) > step:  # slow rates: send in 100 ms slices
                if not await stub.sleep(0.1):
                    stub.send(Chunk(data, chunk.timestamp))
                    return
                stub.send(Chunk(data[:step], chunk.timestamp))
                data = data[step:]
                debt -= 0.1
            start = stub.now()
            if not await stub.sleep(debt):
                stub.send(Chunk(data, chunk.timestamp))
                return
            debt -= stub.now() - start  # carry the timer's error into the next wait
            stub.send(Chunk(data, chunk.timestamp))
