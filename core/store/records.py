"""Plain records the store hands out and the epoch-millisecond time helpers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True, slots=True)
class KnownService:
    """The last state seen of one service: small on purpose, the watcher keeps one per service in memory."""

    service_id: str
    service_name: str | None
    status: str | None
    transition_ms: int | None
    infer_type: str | None
    workspace_id: str | None


@dataclass(frozen=True)
class TargetState:
    """What the store remembers of one target between runs."""

    name: str
    watermark_ms: int | None
    baselined: bool
    last_poll_id: str | None


def to_ms(moment: datetime | None) -> int | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _now_ms() -> int:
    return to_ms(datetime.now(UTC)) or 0
