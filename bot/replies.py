"""Slack messages for answers and errors: a ``Reply`` is what ``respond()`` or ``ack()`` sends.

Errors become short ephemeral messages that say what happened and what to do; they never carry a traceback,
and API-provided text inside them is escaped like everything else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from services_bot.bot.views import (
    MAX_BLOCKS,
    Block,
    details_view,
    escape,
    fallback_text,
    list_view,
    mention,
    summary_view,
)
from services_bot.bot.views_events import hidden_blocks, load_view, service_actions, timeline_view, why_blocks
from services_bot.core.errors import (
    ApiError,
    AuthenticationError,
    ForbiddenError,
    MalformedResponseError,
    QueryError,
    RateLimitedError,
    ServerError,
    ServicesBotError,
    UnavailableError,
)
from services_bot.core.grammar import HELP_TEXT, USAGE
from services_bot.core.insights import LoadAnswer, Timeline
from services_bot.core.models import Service
from services_bot.core.query import ListResult, Summary


class ButtonValueError(QueryError):
    """A button's value could not be read or does not hold: an answer from an older version, a value cut to
    Slack's limit, or one forged to act on another channel, another target or something that does not exist."""

    def __init__(self) -> None:
        super().__init__("This button no longer works.", hint="Ask again with /services.")


@dataclass
class Reply:
    """One Slack message: fallback ``text`` (notifications, screen readers) plus Block Kit ``blocks``.

    ``text`` is parsed as mrkdwn like a section, so every untrusted value in it goes through ``fallback_text``."""

    text: str
    blocks: list[Block] = field(default_factory=list)
    public: bool = False

    def payload(self, **extra: Any) -> dict[str, Any]:
        """Keyword arguments for ``respond()``: ``in_channel`` only when the asker chose to share."""
        return {
            "text": self.text,
            "blocks": self.blocks,
            "response_type": "in_channel" if self.public else "ephemeral",
            **extra,
        }


def help_reply() -> Reply:
    return Reply(
        text=f"Usage: {fallback_text(USAGE, 500)}",
        blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": f"```{escape(HELP_TEXT, 2900)}```"}}],
    )


def list_reply(result: ListResult, command_text: str, *, public: bool = False, shared_by: str | None = None) -> Reply:
    blocks = list_view(result, command_text, shareable=not public)
    if shared_by:
        blocks.insert(1, _context(f"Shared by {mention(shared_by)} · `/services {escape(command_text, 200)}`"))
    partial = "" if result.complete else " (incomplete)"
    text = f"{result.total} services{partial}: {fallback_text(result.description, 200)}"
    return Reply(text=text, blocks=blocks, public=public)


def summary_reply(
    summary: Summary, *, public: bool = False, command_text: str = "summary", shared_by: str | None = None
) -> Reply:
    """A private summary carries "Share in channel" (``command_text`` is what a click runs again)."""
    partial = "" if summary.complete else " (incomplete)"
    text = f"{summary.total} services{partial}, {summary.unhealthy_total} unhealthy"
    return Reply(text=text, blocks=_shareable(summary_view(summary), command_text, public, shared_by), public=public)


def details_reply(
    service: Service,
    *,
    public: bool = False,
    command_text: str | None = None,
    shared_by: str | None = None,
    why: Timeline | None = None,
    console_url: str | None = None,
) -> Reply:
    """A service's details; a private answer to ``show`` carries "Share in channel" (the Details button's
    answer, having no command, does not). ``why`` adds a failed or concerning service's latest abnormal events
    and last update; every answer carries the Timeline button and, when the region is known, Open in console."""
    blocks = [*details_view(service), *hidden_blocks(service)]
    if why is not None:
        blocks += why_blocks(why)
    blocks = [*blocks[: MAX_BLOCKS - 2], service_actions(service, console_url)]
    if command_text is not None:
        blocks = _shareable(blocks, command_text, public, shared_by)
    return Reply(
        text=f"{fallback_text(service.display_name, 150)}: {fallback_text(service.status or 'unknown', 20)}",
        blocks=blocks,
        public=public,
    )


def timeline_reply(service: Service, timeline: Timeline, *, public: bool = False) -> Reply:
    return Reply(
        text=f"{fallback_text(service.display_name, 150)}: {timeline.total} event(s) and update(s)",
        blocks=timeline_view(service, timeline),
        public=public,
    )


def load_reply(service: Service, answer: LoadAnswer, *, public: bool = False) -> Reply:
    load = answer.load
    counts = f"{load.running}/{load.wanted} running" if load and load.wanted is not None else "load"
    return Reply(
        text=f"{fallback_text(service.display_name, 150)}: {fallback_text(counts, 40)}",
        blocks=load_view(service, answer),
        public=public,
    )


def _shareable(blocks: list[Block], command_text: str, public: bool, shared_by: str | None) -> list[Block]:
    """A "Share in channel" button under a private answer, or who shared it under a public one; the button's
    value is the command, run again (in the clicker's channel, with its scope) when pressed."""
    if shared_by:
        blocks = [blocks[0], _context(f"Shared by {mention(shared_by)} · `/services {escape(command_text, 200)}`"),
                  *blocks[1:]]  # fmt: skip
    if not public:
        value = json.dumps({"q": command_text, "o": 0})[:2000]
        share = {"type": "button", "text": {"type": "plain_text", "text": "Share in channel"},
                 "action_id": "share_in_channel", "value": value}  # fmt: skip
        blocks = [*blocks[: MAX_BLOCKS - 1], {"type": "actions", "elements": [share]}]
    return blocks[:MAX_BLOCKS]


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _attempts(exc: ApiError) -> str:
    return f"; retried {exc.attempts - 1} time{'s' if exc.attempts != 2 else ''}" if exc.attempts > 1 else ""


def _headline(exc: ServicesBotError) -> str:
    """What happened, in the words an on-call engineer expects; the hint below says what to do."""
    if isinstance(exc, RateLimitedError):
        wait = f"try again in {round(exc.retry_after)} s" if exc.retry_after else "try again in a few seconds"
        return f"ModelArts is throttling requests{_attempts(exc)}; {wait}."
    if isinstance(exc, AuthenticationError):
        return f"ModelArts refused the bot's credentials (HTTP {exc.status or 401})."
    if isinstance(exc, ForbiddenError):
        return f"ModelArts says the bot may not read this project (HTTP {exc.status or 403})."
    if isinstance(exc, ServerError):
        return f"ModelArts is failing (HTTP {exc.status}){_attempts(exc)}."
    if isinstance(exc, UnavailableError):
        return f"ModelArts cannot be reached{_attempts(exc)}."
    if isinstance(exc, MalformedResponseError):
        return f"ModelArts sent an answer the bot cannot read{_attempts(exc)}."
    return exc.message


def error_reply(exc: ServicesBotError) -> Reply:
    """An ephemeral message: the problem in bold, then what to do; grammar errors add the usage line."""
    headline = _headline(exc)
    hint = "" if isinstance(exc, RateLimitedError) else exc.hint
    lines = [f":warning: *{escape(headline, 1500)}*"]
    if hint:
        lines.append(escape(hint, 1000))
    blocks: list[Block] = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    if isinstance(exc, QueryError):
        blocks.append(_context(f"Usage: `{escape(USAGE, 500)}` · `/services help` for examples"))
    if isinstance(exc, ApiError):
        blocks.append(_context(escape(exc.details(), 500)))
    return Reply(text=fallback_text(f"{headline} {hint}", 3000), blocks=blocks)


def unexpected_reply() -> Reply:
    """For a bug: the asker learns it failed (never a silent spinner or a stack trace); the log has the rest."""
    return error_reply(
        ServicesBotError(
            "Something went wrong inside the bot while answering.",
            hint="It has been logged; try again, and tell the bot's operators if it keeps happening.",
        )
    )
