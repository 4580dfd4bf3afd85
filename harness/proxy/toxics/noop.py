"""noop: passes everything through (valid as a type, as in Toxiproxy)."""

from __future__ import annotations

import dataclasses

from faultlab.harness.proxy.toxics.base import Toxic, ToxicStub, noop_pipe, register


@register
@dataclasses.dataclass
class NoopToxic(Toxic):
    type_name = "noop"

    async def pipe(self, stub: ToxicStub) -> None:
        await noop_pipe(stub)
