"""The client half of each delivery level (DESIGN §3.2), as data.

| level          | acks | buffers offline | retries | client offset on the wire |
| at-most-once   | no   | no (give_up "offline") | no | none: emits `(content)` |
| buffered       | no   | yes (flushed on reconnect) | no | none: emits `(content)` |
| at-least-once  | yes  | yes (one in flight, order kept) | yes | null: `(content, null)` |
| exactly-once   | yes  | yes (one in flight, order kept) | yes | unique per message |

At-least-once sends `(content, null)` with its ack: a tutorial-style handler
`(msg, clientOffset, callback)` then gets the callback in the right place, and the
null offset means the server cannot dedupe, which is the level's point.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    level: str
    acks: bool  # wait for an ack with a timeout, retry, one message in flight
    buffers: bool  # keep sends made while offline and send them on reconnect
    sends_offset: bool  # a second argument goes on the wire (an offset, or null)
    unique_offset: bool  # that offset is unique per message (exactly-once)


PROFILES: dict[str, Profile] = {
    p.level: p
    for p in (
        Profile("at-most-once", acks=False, buffers=False, sends_offset=False,
                unique_offset=False),
        Profile("buffered", acks=False, buffers=True, sends_offset=False, unique_offset=False),
        Profile("at-least-once", acks=True, buffers=True, sends_offset=True,
                unique_offset=False),
        Profile("exactly-once", acks=True, buffers=True, sends_offset=True, unique_offset=True),
    )
}


def profile(level: str) -> Profile:
    try:
        return PROFILES[level]
    except KeyError:
        raise ValueError(
            f"level must be one of {', '.join(PROFILES)}, not {level!r}"
        ) from None
