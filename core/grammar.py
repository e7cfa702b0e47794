"""The ``/services`` grammar, shared by Slack and ``services-bot ask``: text in, a command out.

Pure: no I/O, no clients. Every mistake becomes a ``QueryError`` whose message names the word that was
not understood and, where one is close, the word that was probably meant.
"""

from __future__ import annotations

import difflib
import shlex
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from services_bot.core.errors import QueryError
from services_bot.core.insights import parse_events_args
from services_bot.core.limits import MAX_COMMAND_CHARS, MAX_SERVICE_REF_CHARS, check_length, preview
from services_bot.core.models import KNOWN_INFER_TYPES, KNOWN_STATUSES
from services_bot.core.models_events import EventKind
from services_bot.core.query import STATUS_GROUPS, ServiceQuery, parse_statuses
from services_bot.core.suggest import did_you_mean

USAGE = "/services [status[,status…]|unhealthy] [name:…] [type:…] [ws:…] [model:…] [tag:…] [sort:…] [public]"

HELP_TEXT = f"""\
Usage: {USAGE}

  /services failed                 failed services, with their error
  /services unhealthy type:real-time sort:changed
  /services failed,concerning name:ocr-*
  /services ocr                    services whose name contains "ocr"
  /services summary                counts by status and type, and what is unhealthy
  /services show <service id|name> details of one service (a failed one: its latest abnormal events)
  /services events <service> [since:2h] [type:abnormal]   its events and updates, newest first
  /services load <service>         running against wanted instances, CPU, memory, GPU/NPU, calls
  /services help                   this text

Statuses: {", ".join(KNOWN_STATUSES)}; unhealthy = failed + error + concerning; failed includes error.
Filters: name:<text or glob>  type:{"|".join(KNOWN_INFER_TYPES)}  ws:<workspace id>  model:<model id>
         tag:<tag>  pool:<dedicated pool id>  target:<name>  sort:changed|published|name  order:asc|desc  limit:<1-1000>
`public` posts the answer in the channel instead of only to you.

Alerts in this channel (Slack):
  /services watch failed,concerning name:ocr-*   be told when matching services change state
  /services watches                              this channel's watches, numbered
  /services unwatch 2                            stop watch number 2
  /services history [service] [since:1h]         recent status changes, newest first (default 24h)
  /services mute <service> [2h]                  silence one service here (default 1h)
  /services mutes                                this channel's mutes, each with an Unmute button
  /services unmute <service>                     lift a mute here
  /services audit [since:7d]                     who watched, unwatched, muted, unmuted, acknowledged
Alerts carry Acknowledge ("I'm on it"), Mute 1h and Details buttons."""

FILTER_KEYS: dict[str, str] = {
    "name": "name",
    "type": "infer_type",
    "infer_type": "infer_type",
    "ws": "workspace_id",
    "workspace": "workspace_id",
    "workspace_id": "workspace_id",
    "model": "model_id",
    "model_id": "model_id",
    "tag": "tags",
    "tags": "tags",
    "pool": "pool",
    "sort": "sort",
    "order": "order",
    "limit": "limit",
    "status": "statuses",
    "target": "target",
    "cursor": "cursor",
}
NOTIFICATION_VERBS = ("watch", "unwatch", "watches", "history", "mute", "unmute", "mutes", "audit")
COMMAND_WORDS = ("help", "summary", "show", "events", "load", "list", "all", "public", *NOTIFICATION_VERBS)
_QUOTES = str.maketrans({"“": '"', "”": '"', "‘": "'", "’": "'"})


@dataclass(frozen=True)
class HelpCommand:
    public: bool = False


@dataclass(frozen=True)
class ListCommand:
    query: ServiceQuery
    public: bool = False


@dataclass(frozen=True)
class SummaryCommand:
    query: ServiceQuery
    public: bool = False


@dataclass(frozen=True)
class ShowCommand:
    ref: str
    target: str | None = None
    public: bool = False


@dataclass(frozen=True)
class EventsCommand:
    """``events <service> [since:2h] [type:abnormal]``: the service's timeline."""

    ref: str
    since: timedelta | None = None
    kind: EventKind | None = None
    target: str | None = None
    public: bool = False


@dataclass(frozen=True)
class LoadCommand:
    """``load <service>``: running against wanted instances and resource usage."""

    ref: str
    target: str | None = None
    public: bool = False


@dataclass(frozen=True)
class NotificationCommand:
    """``watch``/``unwatch``/``watches``/``history``/``mute``/``unmute``/``mutes``/``audit``: parsed here,
    carried out by the notifier."""

    verb: str
    args: list[str] = field(default_factory=list)
    public: bool = False


Command = HelpCommand | ListCommand | SummaryCommand | ShowCommand | EventsCommand | LoadCommand | NotificationCommand


def tokenize(text: str) -> list[str]:
    """Split like a shell (quotes group words), accepting the curly quotes chat clients type. The length is
    checked first: everything after (splitting, suggestions, matching) then works on a bounded text."""
    check_length(
        "command",
        text or "",
        MAX_COMMAND_CHARS,
        hint=f"A command is at most {MAX_COMMAND_CHARS} characters; give shorter filters (e.g. name:ocr-*).",
    )
    try:
        return shlex.split((text or "").translate(_QUOTES))
    except ValueError:
        raise QueryError("A quote is not closed.", hint='Close it, e.g. name:"ocr prod".') from None


def parse_command(text: str, *, default_limit: int = 20) -> Command:
    tokens = tokenize(text)
    public = any(t.lower() == "public" for t in tokens)
    tokens = [t for t in tokens if t.lower() != "public"]
    if not tokens or tokens[0].lower() in ("help", "?", "-h", "--help"):
        return HelpCommand(public=public)
    verb = tokens[0].lower()
    if verb in NOTIFICATION_VERBS:
        return NotificationCommand(verb=verb, args=tokens[1:], public=public)
    if verb == "show":
        return _parse_show(tokens[1:], public)
    if verb == "events":
        target, rest = _take_target(tokens[1:])
        ref, since, kind = parse_events_args(rest)
        ref = check_length("service id or name", ref, MAX_SERVICE_REF_CHARS)
        return EventsCommand(ref=ref, since=since, kind=kind, target=target, public=public)
    if verb == "load":
        show = _parse_show(tokens[1:], public)
        return LoadCommand(ref=show.ref, target=show.target, public=public)
    if verb == "summary":
        return SummaryCommand(query=_parse_query(tokens[1:], default_limit), public=public)
    if verb in ("list", "all"):
        tokens = tokens[1:]
    return ListCommand(query=_parse_query(tokens, default_limit), public=public)


def _take_target(tokens: list[str]) -> tuple[str | None, list[str]]:
    target = None
    rest: list[str] = []
    for token in tokens:
        key, sep, value = token.partition(":")
        if sep and key.lower() == "target":
            target = value
        else:
            rest.append(token)
    return target, rest


def _parse_show(tokens: list[str], public: bool) -> ShowCommand:
    target, rest = _take_target(tokens)
    if not rest:
        raise QueryError("`show` needs a service id or name.", hint="e.g. /services show ocr-invoice-prod")
    ref = check_length("service id or name", " ".join(rest), MAX_SERVICE_REF_CHARS)
    return ShowCommand(ref=ref, target=target, public=public)


def _parse_query(tokens: list[str], default_limit: int) -> ServiceQuery:
    fields: dict[str, Any] = {"limit": default_limit}
    statuses: set[str] = set()
    for token in tokens:
        key, sep, value = token.partition(":")
        if sep and key:
            _apply_filter(fields, statuses, key, value)
        elif _is_status_list(token):
            statuses |= parse_statuses(token.split(","))
        else:
            _apply_bare_word(fields, token)
    if statuses:
        fields["statuses"] = frozenset(statuses)
    return ServiceQuery.build(**fields)


def _apply_filter(fields: dict[str, Any], statuses: set[str], key: str, value: str) -> None:
    name = FILTER_KEYS.get(key.lower())
    if name is None:
        guess = did_you_mean(key, FILTER_KEYS)
        raise QueryError(
            f"Unknown filter '{preview(key)}:'." + (f" Did you mean '{guess}:'?" if guess else ""),
            hint="Filters: name: type: ws: model: tag: pool: target: sort: order: limit:.",
            suggestion=f"{guess}:" if guess else None,
        )
    if not value:
        raise QueryError(f"The filter '{preview(key)}:' has no value.", hint=f"Write it as {preview(key)}:<value>.")
    if name == "statuses":
        statuses |= parse_statuses(value.split(","))
    elif name in fields and name != "limit":
        raise QueryError(f"'{key}:' is given twice.", hint="Give each filter once.")
    elif name == "order" and value.lower() not in ("asc", "desc"):
        raise QueryError(f"Unknown order '{preview(value)}'.", hint="Use order:asc or order:desc.")
    elif name == "limit" and not value.isdigit():
        raise QueryError(f"limit must be a whole number, not '{preview(value)}'.", hint="e.g. limit:50.")
    else:
        fields[name] = value.lower() if name == "order" else value


def _is_status_list(token: str) -> bool:
    parts = [p.strip().lower() for p in token.split(",") if p.strip()]
    known = (*KNOWN_STATUSES, *STATUS_GROUPS)
    return bool(parts) and (all(p in known for p in parts) or ("," in token and any(p in known for p in parts)))


def _apply_bare_word(fields: dict[str, Any], word: str) -> None:
    """A bare word filters by name, unless it looks like a misspelt status or command word."""
    guess = did_you_mean(word, [*KNOWN_STATUSES, *STATUS_GROUPS, *COMMAND_WORDS])
    if guess and guess.lower() != word.lower() and _close(word, guess):
        raise QueryError(
            f"Unknown word '{preview(word)}'. Did you mean '{guess}'?",
            hint=f"To search service names for it, write name:{preview(word)}.",
            suggestion=guess,
        )
    if "name" in fields:
        raise QueryError(
            f"Two names given ('{preview(fields['name'])}' and '{preview(word)}').",
            hint='Give one name filter; use a glob (name:ocr-*) or quotes (name:"ocr prod").',
        )
    fields["name"] = word


def _close(word: str, guess: str) -> bool:
    """Closer than did_you_mean's default: a real service name like 'ocr' must not be taken for 'stopped'."""
    return difflib.SequenceMatcher(None, word.lower(), guess.lower()).ratio() >= 0.75
