"""Test-only planted bugs: each makes the server commit one known violation.

They exist so the harness can prove it detects what it claims to detect. One is
chosen with `--mutation NAME` and only when mutations were explicitly allowed.
Where a bug touches "some" messages, it picks the 1st, 4th, 7th, ... candidate,
so a three-message test always sees it and a checker always has clean neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass, field

EVERY = 3


@dataclass(frozen=True)
class Planted:
    """One planted bug: the violation kind it causes and how."""

    kind: str
    what: str
    needs: str = "nothing"


MUTATIONS: dict[str, Planted] = {
    "ack_before_commit": Planted(
        "lost_acked",
        "acks every message before its insert is committed",
        "a crash or store failure between the ack and the commit",
    ),
    "drop_after_ack": Planted("lost_acked", "deletes every third row right after acking it"),
    "drop_silently": Planted(
        "lost", "never stores (nor acks) every third distinct message, retries included"
    ),
    "no_dedupe": Planted(
        "duplicated_stored",
        "exactly-once without the UNIQUE client offset: retries are stored again",
        "a retry (an ack lost or late)",
    ),
    "double_insert": Planted("duplicated_stored", "stores every third message twice"),
    "commit_out_of_order": Planted(
        "sender_reordered",
        "acks every third message at once and commits it after that sender's next message",
    ),
    "phantom_row": Planted(
        "phantom", "after every third message, stores and broadcasts a row nobody sent"
    ),
    "corrupt_one_client": Planted(
        "corrupted", "broadcasts every third row to one client with altered content"
    ),
    "broadcast_before_commit": Planted(
        "corrupted",
        "broadcasts each message under a guessed id before inserting it",
        "a failed insert (store locked, before_insert error): the id is reused by another row",
    ),
    "double_broadcast": Planted(
        "duplicated_delivered",
        "broadcasts every third row twice",
        "the naive receive policy (strict shows each offset once)",
    ),
    "sync_from_ge": Planted(
        "duplicated_delivered",
        "catch-up sends id >= serverOffset instead of >",
        "a reconnect without recovery and the naive receive policy",
    ),
    "swap_broadcasts": Planted(
        "out_of_order", "broadcasts every third row after the row that follows it"
    ),
    "no_sync": Planted(
        "never_delivered", "no catch-up on connect", "a client that missed rows while offline"
    ),
    "truncated_sync": Planted(
        "never_delivered", "catch-up sends only the first row", "a client that missed 2+ rows"
    ),
    "skip_broadcast": Planted(
        "never_delivered", "commits and acks every third row but never broadcasts it"
    ),
}


class BadMutation(ValueError):
    """An unknown mutation, or one asked for without allowing mutations."""


@dataclass
class Mutation:
    """The planted bug in effect (or none), with its deterministic picker."""

    name: str | None = None
    _counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def choose(cls, name: str | None, *, allowed: bool) -> Mutation:
        if name is None:
            return cls()
        if name not in MUTATIONS:
            raise BadMutation(f"unknown mutation {name!r}; see --list-mutations")
        if not allowed:
            raise BadMutation(
                f"mutation {name!r} plants a bug; pass --allow-mutations "
                "or set FAULTLAB_ALLOW_MUTATIONS=1 to allow it"
            )
        return cls(name)

    def is_(self, name: str) -> bool:
        return self.name == name

    def pick(self, name: str, site: str = "") -> bool:
        """True for the 1st, 4th, 7th, ... call at this site when `name` is in effect."""
        if self.name != name:
            return False
        key = f"{name}:{site}"
        n = self._counts.get(key, 0)
        self._counts[key] = n + 1
        return n % EVERY == 0
