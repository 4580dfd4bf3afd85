"""The invariants of DESIGN §3.4, one small module each, in precedence order.

Each is a named SQL query over the tables of `model` returning candidate rows
(key, client, how): `key` is the message's content (messages are matched by
content), `client` where a delivery went wrong (NULL for store outcomes), `how` an
optional detail. A message is then listed under the first kind, in this order,
that names it. A module may also define `GATE`, a cheap exact test (one boolean)
that says whether its query can name anything; when it says no, the query is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module


@dataclass(frozen=True)
class Invariant:
    kind: str
    sql: str
    gate: str | None = None


_MODULES = (
    "lost_acked", "lost", "duplicated_stored", "sender_reordered", "phantom",
    "corrupted", "duplicated_delivered", "out_of_order", "never_delivered",
)

ALL: tuple[Invariant, ...] = tuple(
    Invariant(name, module.SQL, getattr(module, "GATE", None))
    for name, module in ((name, import_module(f"{__name__}.{name}")) for name in _MODULES)
)
KINDS: tuple[str, ...] = tuple(inv.kind for inv in ALL)
