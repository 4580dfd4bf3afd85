"""slicer: cut data into pieces of about `average_size` ± `size_variation` bytes,
waiting `delay` microseconds after each piece."""

from __future__ import annotations

import dataclasses
import random

from faultlab.harness.proxy.toxics.base import Chunk, Toxic, ToxicStub, register


@register
@dataclasses.dataclass
class SlicerToxic(Toxic):
    type_name = "slicer"
    average_size: int = 0
    size_variation: int = 0
    delay: int = 0

    def cuts(self, start: int, end: int, rng: random.Random) -> list[int]:
        """Offsets [a0, b0, a1, b1, ...] of the pieces, split in halves recursively.

        A piece of one byte is never split (Toxiproxy recurses forever there).
        """
        if (end - start) - self.average_size <= self.size_variation or end - start <= 1:
            return [start, end]
        mid = start + (end - start) // 2
        if self.size_variation > 0:
            mid += rng.randrange(self.size_variation * 2) - self.size_variation
        mid = min(max(mid, start + 1), end - 1)
        return self.cuts(start, mid, rng) + self.cuts(mid, end, rng)

    async def pipe(self, stub: ToxicStub) -> None:
        while True:
            chunk = await stub.recv()
            if chunk is None:
                stub.close()
                return
            cuts = self.cuts(0, len(chunk.data), stub.rng)
            for i in range(1, len(cuts), 2):
                stub.send(Chunk(chunk.data[cuts[i - 1] : cuts[i]], chunk.timestamp))
                if not await stub.sleep(self.delay / 1_000_000):
                    stub.send(Chunk(chunk.data[cuts[i] :], chunk.timestamp))
                    return
