"""Named points in the server where a crash, a delay or an error can be armed.

Armed from a spec string at start (`--failpoints` / `FAULTLAB_FAILPOINTS`) and
through the admin endpoint at run time. Unarmed, `hit` is one dictionary lookup,
so the points can stay in the hot path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("faultlab.server.failpoints")

NAMES = ("before_insert", "after_commit", "before_broadcast", "during_sync")
ACTIONS = ("crash", "delay", "error", "off")
CRASH_EXIT_CODE = 86

_ENTRY = re.compile(
    r"^(?P<name>[a-z_]+)=(?P<action>crash|error|off|delay\((?P<ms>\d+)\))(?:\*(?P<count>\d+))?$"
)


class FailpointError(RuntimeError):
    """Raised where an `error` failpoint fires."""


class BadFailpoint(ValueError):
    """A failpoint spec or admin request that cannot be armed; the message says why."""


@dataclass
class Arm:
    """An armed failpoint: what it does and how many more hits it fires for (None = always)."""

    action: str
    ms: int = 0
    remaining: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {"action": self.action, "ms": self.ms, "remaining": self.remaining}


class Failpoints:
    """The armed points and the record of which fired and when."""

    def __init__(self) -> None:
        self.armed: dict[str, Arm] = {}
        self.fired: list[dict[str, Any]] = []

    def arm(self, name: str, action: str, ms: int | None = None, count: int | None = None) -> None:
        """Arm (or with `off`, disarm) one point; raises `BadFailpoint` with the reason."""
        if name not in NAMES:
            raise BadFailpoint(f"unknown failpoint {name!r}; known: {', '.join(NAMES)}")
        if action not in ACTIONS:
            raise BadFailpoint(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
        if action == "off":
            self.armed.pop(name, None)
            return
        if action == "delay":
            if ms is None or isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
                raise BadFailpoint("delay needs 'ms', a non-negative integer")
        elif ms is not None:
            raise BadFailpoint(f"'ms' applies to delay only, not {action}")
        if count is not None and (
            isinstance(count, bool) or not isinstance(count, int) or count < 1
        ):
            raise BadFailpoint("'count' must be a positive integer")
        self.armed[name] = Arm(action, ms or 0, count)

    def arm_spec(self, spec: str) -> None:
        """Arm from a spec such as `after_commit=crash;before_insert=delay(200)*3`.

        Raises `BadFailpoint` naming the first bad entry.
        """
        for raw in spec.split(";"):
            entry = raw.strip()
            if not entry:
                continue
            m = _ENTRY.match(entry)
            if m is None:
                raise BadFailpoint(
                    f"bad failpoint entry {entry!r}; "
                    "expected name=crash|error|off|delay(MS)[*COUNT]"
                )
            action = m["action"].split("(")[0]
            ms = int(m["ms"]) if m["ms"] is not None else None
            count = int(m["count"]) if m["count"] is not None else None
            self.arm(m["name"], action, ms, count)

    def state(self) -> dict[str, Any]:
        return {
            "armed": {name: arm.as_json() for name, arm in self.armed.items()},
            "fired": list(self.fired),
        }

    async def hit(self, name: str) -> None:
        """Pass the point named `name`: no-op unless armed, else crash, sleep or raise."""
        arm = self.armed.get(name)
        if arm is None:
            return
        if arm.remaining is not None:
            arm.remaining -= 1
            if arm.remaining <= 0:
                del self.armed[name]
        self.fired.append({"name": name, "action": arm.action, "at": time.time()})
        if arm.action == "crash":
            sys.stderr.write(f"failpoint {name} fired: crash (exit {CRASH_EXIT_CODE})\n")
            sys.stderr.flush()
            os._exit(CRASH_EXIT_CODE)
        log.warning(
            "failpoint %s fired: %s%s",
            name,
            arm.action,
            f"({arm.ms} ms)" if arm.action == "delay" else "",
        )
        if arm.action == "delay":
            await asyncio.sleep(arm.ms / 1000)
        elif arm.action == "error":
            raise FailpointError(f"failpoint {name} fired")
