"""The violation kinds of the verdict (DESIGN §3.4) and how the report groups them.

One table so every view (matrix, summary, HTML, JSON) names and orders kinds alike.
"""

from __future__ import annotations

VIOLATION_KINDS: tuple[str, ...] = (
    "lost_acked",
    "lost",
    "duplicated_stored",
    "sender_reordered",
    "phantom",
    "corrupted",
    "duplicated_delivered",
    "out_of_order",
    "never_delivered",
)

DESCRIPTIONS: dict[str, str] = {
    "lost_acked": "acknowledged as stored, but not in the store",
    "lost": "sent, never stored, never rejected",
    "duplicated_stored": "stored in more than one row",
    "sender_reordered": "stored in an order other than the sender sent them",
    "phantom": "a row or a receive whose content no client sent",
    "corrupted": "received content differs from the stored row",
    "duplicated_delivered": "one row shown twice in one display session",
    "out_of_order": "shown after a message with a higher server offset",
    "never_delivered": "stored, but never shown by a client that should have converged",
}

# The matrix columns a reader scans: the four families the issue names, plus the rest.
GROUPS: dict[str, tuple[str, ...]] = {
    "lost": ("lost_acked", "lost"),
    "duplicated": ("duplicated_stored", "duplicated_delivered"),
    "out of order": ("out_of_order", "sender_reordered"),
    "never delivered": ("never_delivered",),
    "other": ("phantom", "corrupted"),
}


def grouped(counts: dict[str, int]) -> dict[str, int]:
    """Sum per-kind counts into the reader-facing groups."""
    return {name: sum(counts.get(k, 0) for k in kinds) for name, kinds in GROUPS.items()}
