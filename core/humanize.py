"""Short human wording shared by every surface (terminal, Slack)."""

from __future__ import annotations

from datetime import UTC, datetime


def ago(when: datetime | None, now: datetime | None = None) -> str | None:
    """``5m ago``, ``3d ago``; ``just now`` for a time ahead of our clock (skew); None when there is no time."""
    if when is None:
        return None
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 0:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"
