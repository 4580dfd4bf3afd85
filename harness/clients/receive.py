"""Receive policies (DESIGN §3.2): what a page displays and which offset it keeps.

`naive` is the tutorial's page: it displays whatever arrives and keeps the offset of
the last message received. `strict` displays a server offset at most once per
display session, in arrival order, and keeps the highest offset displayed, so a
server that redelivers shows up as `redelivered` and one that reorders as
`out_of_order`, never as a silent drop.
"""

from __future__ import annotations

from typing import Any


class ShownSet(set[int]):
    """Offsets shown in a display session; ids up to `floor` (its `resume_from`) count too."""

    def __init__(self, floor: int = 0) -> None:
        super().__init__()
        self.floor = floor

    def __contains__(self, offset: object) -> bool:
        return (type(offset) is int and offset <= self.floor) or set.__contains__(self, offset)


class ReceivePolicy:
    """One display session's state: the offsets shown and the offset sent in `auth`."""

    name = ""

    def __init__(self, resume_from: int = 0) -> None:
        self.resume_from = resume_from
        self.server_offset: Any = resume_from
        self.shown = ShownSet(resume_from)

    def accept(self, server_offset: Any) -> bool:
        """Whether to display a message that arrived with `server_offset`."""
        raise NotImplementedError


class Naive(ReceivePolicy):
    name = "naive"

    def accept(self, server_offset: Any) -> bool:
        self.server_offset = server_offset
        if type(server_offset) is int:
            set.add(self.shown, server_offset)
        return True


class Strict(ReceivePolicy):
    """Shows only integer offsets not yet shown in this session (a non-integer offset is
    not a row id, so it cannot be shown at a place in the conversation)."""

    name = "strict"

    def accept(self, server_offset: Any) -> bool:
        if type(server_offset) is not int or set.__contains__(self.shown, server_offset):
            return False
        set.add(self.shown, server_offset)
        if server_offset > self.server_offset:
            self.server_offset = server_offset
        return True


POLICIES: dict[str, type[ReceivePolicy]] = {"naive": Naive, "strict": Strict}


def policy(name: str, resume_from: int = 0) -> ReceivePolicy:
    try:
        return POLICIES[name](resume_from)
    except KeyError:
        raise ValueError(f"receive policy must be naive or strict, not {name!r}") from None
