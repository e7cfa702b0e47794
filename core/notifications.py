"""What the watcher produces and who wants it: transitions, subscriptions, notices, deliveries, and the pure
parsers of the notification commands (``watch``, ``unwatch``, ``history``, ``mute``).

Everything here is free of I/O so routing and parsing can be tested exhaustively and fast; the store persists
these models and the watcher fills them.

Matching rule (``Subscription.matches``): a transition matches when *either end* is a watched status. So a
channel watching ``failed`` hears when a service fails, when it recovers (leaves ``failed``), when a failed
service is deleted (its last status was ``failed``) and when a new service appears already ``failed``. A
``flap`` (same status, new ``transition_at``: it changed and came back between two polls) matches by that
status. Name, type, workspace and target filters must all hold as well.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from services_bot.core.errors import QueryError
from services_bot.core.limits import (
    MAX_DURATION_CHARS,
    MAX_ID_CHARS,
    MAX_PATTERN_CHARS,
    MAX_SERVICE_REF_CHARS,
    check_length,
    preview,
)
from services_bot.core.models import FAILED_STATUSES, KNOWN_INFER_TYPES, UNHEALTHY_STATUSES
from services_bot.core.query import name_matcher, parse_statuses
from services_bot.core.suggest import did_you_mean

TransitionKind = Literal["changed", "new", "deleted", "flap"]
DeliveryState = Literal["pending", "in_flight", "done", "failed"]

DEFAULT_WATCH_STATUSES: frozenset[str] = UNHEALTHY_STATUSES
DEFAULT_HISTORY_SINCE = timedelta(hours=24)
MAX_HISTORY_SINCE = timedelta(days=366)
DEFAULT_AUDIT_SINCE = timedelta(days=7)
DEFAULT_MUTE = timedelta(hours=1)
MAX_MUTE = timedelta(days=30)

_WATCH_KEYS: dict[str, str] = {
    "name": "name_glob",
    "type": "infer_type",
    "ws": "workspace_id",
    "workspace": "workspace_id",
    "target": "target",
}
_WATCH_LIMITS: dict[str, tuple[str, int]] = {
    "name_glob": ("name pattern", MAX_PATTERN_CHARS),
    "workspace_id": ("workspace id", MAX_ID_CHARS),
    "target": ("target name", MAX_ID_CHARS),
    "infer_type": ("service type", MAX_ID_CHARS),
}
_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Transition(BaseModel):
    """One observed change of one service. ``transition_at`` is the API's time, ``observed_at`` ours (UTC)."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    target: str
    project_id: str | None = None
    service_id: str
    service_name: str | None = None
    kind: TransitionKind
    from_status: str | None = Field(None, description="None for a new service.")
    to_status: str | None = Field(None, description="None for a deleted service.")
    transition_at: datetime | None = None
    observed_at: datetime = Field(default_factory=utcnow)
    error_msg: str | None = None
    infer_type: str | None = None
    workspace_id: str | None = None
    poll_id: str | None = None
    grouped: bool = Field(
        False,
        description="Part of a confirmed mass deletion: each channel gets the batch as one grouped message, "
        "whatever the group threshold.",
    )

    @property
    def display_name(self) -> str:
        return self.service_name or self.service_id

    @property
    def statuses(self) -> set[str]:
        """Both ends, for matching: a watched status on either side makes the change interesting."""
        return {s for s in (self.from_status, self.to_status) if s}


class Subscription(BaseModel):
    """A channel's wish to hear about some transitions. ``name_glob`` is a glob when it has ``* ? [``, else a
    case-insensitive substring, exactly like the ``name:`` filter of ``/services``."""

    model_config = ConfigDict(frozen=True)

    id: int | None = None
    channel: str
    statuses: frozenset[str] = DEFAULT_WATCH_STATUSES
    name_glob: str | None = None
    infer_type: str | None = None
    workspace_id: str | None = None
    target: str | None = None
    created_by: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    is_default: bool = False

    def matches(self, t: Transition) -> bool:
        """A watch of ``failed`` made before v2 was read also hears of v2's ``error`` (``FAILED_STATUSES``)."""
        watched = self.statuses | FAILED_STATUSES if "failed" in self.statuses else self.statuses
        if not (t.statuses & watched):
            return False
        if self.target and t.target != self.target:
            return False
        if self.infer_type and t.infer_type != self.infer_type:
            return False
        if self.workspace_id and t.workspace_id != self.workspace_id:
            return False
        return not self.name_glob or name_matcher(self.name_glob)(t.service_name or "")

    def describe(self) -> str:
        """``failed, concerning · name:ocr-* · type:real-time`` (statuses in a stable order)."""
        parts = [", ".join(sorted(self.statuses, key=_status_order))]
        for label, value in (
            ("name", self.name_glob),
            ("type", self.infer_type),
            ("ws", self.workspace_id),
            ("target", self.target),
        ):
            if value:
                parts.append(f"{label}:{value}")
        if self.is_default:
            parts.append("(default)")
        return " · ".join(parts)

    def same_filter(self, other: Subscription) -> bool:
        return (self.statuses, self.name_glob, self.infer_type, self.workspace_id, self.target) == (
            other.statuses,
            other.name_glob,
            other.infer_type,
            other.workspace_id,
            other.target,
        )


class Notice(BaseModel):
    """An operator message about the bot itself: ModelArts unreachable or reachable again (``outage``,
    ``recovered``), or Slack refusing alerts for good (``delivery``: ``channel`` is the channel that refuses
    them when the notice goes elsewhere)."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["outage", "recovered", "delivery", "mute_ended"]
    target: str
    text: str
    observed_at: datetime = Field(default_factory=utcnow)
    channel: str | None = None
    service_id: str | None = Field(None, description="The service a notice is about (posted in its alert thread).")


class Delivery(BaseModel):
    """One outbox row: a transition (or a notice) to post in one channel. Rows of one poll share ``poll_id``
    so a burst can be grouped into one message per channel."""

    id: int
    channel: str
    state: DeliveryState = "pending"
    attempts: int = 0
    next_attempt_at: datetime
    created_at: datetime
    poll_id: str | None = None
    transition: Transition | None = None
    notice: Notice | None = None
    ts: str | None = None
    thread_ts: str | None = None
    error: str | None = None
    first_attempt_at: datetime | None = Field(None, description="When a post was first tried.")
    check_posted: bool = Field(
        False,
        description="Maybe posted already (left in flight by a crash, or a failure that may have posted): look "
        "for it in the channel before posting it again.",
    )


class AlertThread(BaseModel):
    """The first alert of a service in a channel; later transitions within a day go into its thread."""

    channel: str
    target: str
    service_id: str
    root_ts: str
    transition_id: int | None = None
    delivery_id: int | None = None
    opened_at: datetime
    resolved: bool = False


class Mute(BaseModel):
    channel: str
    target: str
    service_id: str
    service_name: str | None = None
    until: datetime
    set_by: str | None = None
    set_at: datetime | None = None


class Acknowledgement(BaseModel):
    """Someone said "I'm on it" about one alert (a transition as posted in one channel)."""

    model_config = ConfigDict(frozen=True)

    transition_id: int
    channel: str
    user: str
    at: datetime


AuditAction = Literal["watch", "unwatch", "mute", "unmute", "acknowledge"]


class AuditEntry(BaseModel):
    """One state-changing action, as ``/services audit`` lists it."""

    id: int | None = None
    at: datetime
    channel: str
    user: str
    action: AuditAction
    target: str | None = None
    service_id: str | None = None
    detail: str = ""


# -- matching --------------------------------------------------------------------------------------


def route(transitions: Iterable[Transition], subscriptions: Iterable[Subscription]) -> list[tuple[str, Transition]]:
    """(channel, transition) pairs, one per channel however many of its subscriptions match."""
    subs = list(subscriptions)
    pairs: list[tuple[str, Transition]] = []
    for t in transitions:
        channels = dict.fromkeys(s.channel for s in subs if s.matches(t))
        pairs.extend((channel, t) for channel in channels)
    return pairs


def _status_order(status: str) -> tuple[int, str]:
    preferred = ("failed", "error", "concerning")
    return (preferred.index(status) if status in preferred else len(preferred), status)


# -- parsers ---------------------------------------------------------------------------------------


def parse_duration(
    text: str, *, at_most: timedelta = MAX_HISTORY_SINCE, hint: str = "The longest duration is 366 days."
) -> timedelta:
    """``90s``, ``30m``, ``1h``, ``2d``, ``1w`` or a sum such as ``1h30m``; a bare number means minutes.

    Bounded twice before any arithmetic: the text (so ``int()`` never meets thousands of digits) and the total,
    compared as whole seconds (so ``999999999w`` is "too long", not a ``timedelta`` overflow)."""
    check_length("duration", text or "", MAX_DURATION_CHARS, hint="Write it as a number and a unit, e.g. 2h or 7d.")
    raw = (text or "").strip().lower()
    if raw.isdigit():
        raw += "m"
    compact = raw.replace(" ", "")
    total = 0
    position = 0
    for match in _DURATION_PART.finditer(compact):
        if match.start() != position:
            break
        total += int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if not compact or position != len(compact):
        raise QueryError(
            f"'{preview(text)}' is not a duration.",
            hint="Write a number and a unit: 30m, 2h, 1d (s, m, h, d, w; e.g. 1h30m).",
        )
    if total <= 0:
        raise QueryError(f"The duration '{text}' is zero.", hint="Give a positive duration such as 30m or 2h.")
    if total > at_most.total_seconds():
        raise QueryError(f"The duration '{text}' is too long: at most {_days(at_most)}.", hint=hint)
    return timedelta(seconds=total)


def _days(delta: timedelta) -> str:
    return f"{delta.days} days" if delta.days != 1 else "1 day"


def parse_watch_args(args: list[str]) -> dict[str, Any]:
    """``failed,concerning name:ocr-* type:real-time ws:... target:...`` → Subscription fields.

    Statuses may be spread over several words and accept ``unhealthy``; none given means failed+concerning.
    """
    words: list[str] = []
    fields: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition(":")
        if not sep:
            words.extend(arg.split(","))
            continue
        field = _WATCH_KEYS.get(key.strip().lower())
        if field is None:
            guess = did_you_mean(key, list(_WATCH_KEYS))
            raise QueryError(
                f"Unknown filter '{preview(key)}:'." + (f" Did you mean '{guess}:'?" if guess else ""),
                hint="watch takes statuses and name:, type:, ws:, target: (e.g. `watch failed name:ocr-*`).",
                suggestion=guess,
            )
        value = value.strip()
        if not value:
            raise QueryError(f"'{key}:' has no value.", hint="Write it as key:value, e.g. name:ocr-*.")
        if field in fields:
            raise QueryError(f"'{key}:' is given twice.", hint="Give each filter once.")
        what, limit = _WATCH_LIMITS[field]
        check_length(what, value, limit)
        fields[field] = _infer_type(value) if field == "infer_type" else value
    statuses = parse_statuses(words)
    return {
        "statuses": statuses or DEFAULT_WATCH_STATUSES,
        "name_glob": fields.get("name_glob"),
        "infer_type": fields.get("infer_type"),
        "workspace_id": fields.get("workspace_id"),
        "target": fields.get("target"),
    }


def _infer_type(value: str) -> str:
    lowered = value.lower()
    if lowered in KNOWN_INFER_TYPES:
        return lowered
    guess = did_you_mean(lowered, KNOWN_INFER_TYPES)
    raise QueryError(
        f"Unknown service type '{preview(value)}'." + (f" Did you mean '{guess}'?" if guess else ""),
        hint="Valid types: " + ", ".join(KNOWN_INFER_TYPES) + ".",
        suggestion=guess,
    )


def parse_unwatch_args(args: list[str]) -> int:
    """``unwatch N``: the number shown by ``watches``."""
    if len(args) != 1 or not args[0].strip().isdigit() or int(args[0]) < 1:
        raise QueryError(
            "unwatch needs the number of one subscription.",
            hint="`watches` lists this channel's subscriptions with their numbers; then e.g. `unwatch 2`.",
        )
    return int(args[0])


def parse_history_args(args: list[str]) -> tuple[str | None, timedelta]:
    """``history [service] [since:1h]`` → (service id or name, how far back; default 24 h)."""
    service: str | None = None
    since = DEFAULT_HISTORY_SINCE
    for arg in args:
        key, sep, value = arg.partition(":")
        if sep and key.strip().lower() == "since":
            since = parse_duration(value, at_most=MAX_HISTORY_SINCE, hint="History goes back at most a year.")
        elif sep:
            raise QueryError(
                f"Unknown option '{preview(key)}:'.",
                hint="history takes a service and since:, e.g. `history ocr-prod since:2d`.",
            )
        elif service is None:
            service = check_length("service id or name", arg.strip(), MAX_SERVICE_REF_CHARS)
        else:
            raise QueryError(
                f"history takes one service, got '{preview(service)}' and '{preview(arg)}'.",
                hint="e.g. `history ocr-prod since:2d`, or `history since:1h` for every service.",
            )
    return service, since


def parse_audit_args(args: list[str]) -> timedelta:
    """``audit [since:7d]`` (default 7 days, at most a year)."""
    since = DEFAULT_AUDIT_SINCE
    for arg in args:
        key, sep, value = arg.partition(":")
        if not sep or key.strip().lower() != "since":
            raise QueryError(f"audit takes only since:, not '{preview(arg)}'.", hint="e.g. `audit since:7d`.")
        since = parse_duration(value, at_most=MAX_HISTORY_SINCE, hint="The audit goes back at most a year.")
    return since


def parse_unmute_args(args: list[str]) -> str:
    """``unmute <service>``."""
    if len(args) != 1:
        raise QueryError("unmute needs one service.", hint="e.g. `unmute ocr-prod`; `mutes` lists this channel's.")
    return check_length("service id or name", args[0].strip(), MAX_SERVICE_REF_CHARS)


def parse_mute_args(args: list[str]) -> tuple[str, timedelta]:
    """``mute <service> [duration]`` (default 1 h, at most 30 days)."""
    if not args:
        raise QueryError("mute needs a service.", hint="e.g. `mute ocr-prod 2h` (default 1h, at most 30d).")
    if len(args) > 2:
        raise QueryError("mute takes a service and a duration.", hint="e.g. `mute ocr-prod 2h`.")
    service = check_length("service id or name", args[0].strip(), MAX_SERVICE_REF_CHARS)
    if len(args) < 2:
        return service, DEFAULT_MUTE
    duration = parse_duration(
        args[1].removeprefix("for:"), at_most=MAX_MUTE, hint="A mute lasts at most 30 days, e.g. `mute ocr-prod 7d`."
    )
    return service, duration
