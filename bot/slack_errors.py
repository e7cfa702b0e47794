"""What a failed Slack Web API call means for an alert: wait and try again, or stop and say so.

A pure reading of an exception, so the delivery worker's policy is one ``match`` on ``SlackFailure.scope``:

- ``transient``: no answer (network, timeout), HTTP 408/429/5xx, or an error Slack documents as temporary
  (``ratelimited``, ``fatal_error``, ``internal_error``, ``service_unavailable``, ``request_timeout``, …). These
  heal by themselves: they are retried for as long as they last.
- ``token``: Slack refuses the bot itself (``invalid_auth``, ``token_revoked``, ``missing_scope``, …): no post can
  succeed until someone fixes the token or the app; nobody can be told in Slack. The alerts are not at fault,
  so they are held (tried again at the longest backoff), not failed.
- ``channel``: Slack refuses this channel (``channel_not_found``, ``not_in_channel``, ``is_archived``, …): other
  channels still work, so the alert channel can be told.
- ``message``: Slack accepted the call but not this message (``invalid_blocks``, ``msg_too_long``, and any error
  not listed here): the channel works, so it can be told an alert was lost.

Only a ``transient`` failure is retried as such (and a ``token`` one held); an answer Slack gave deliberately about
a channel or a message does not change by asking again.
Some transient failures leave it open whether the post was made (``maybe_posted``): no answer although the
request was sent (a timeout, a dropped connection), HTTP 500/502/504, or an error Slack says may follow a
partial success (``fatal_error``, ``internal_error``, ``request_timeout``) but not with a 503, which says the
request was not served. Such a row is looked up in its channel before it is tried again, as after a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
from slack_sdk.errors import SlackApiError

Scope = Literal["transient", "token", "channel", "message"]

TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "rate_limited", "fatal_error", "internal_error", "service_unavailable", "request_timeout"}
    | {"team_added_to_org", "message_limit_exceeded"}
)
TOKEN_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired", "missing_scope"}
    | {"not_allowed_token_type", "no_permission", "ekm_access_denied", "team_access_not_granted"}
    | {"org_login_required", "two_factor_setup_required", "enterprise_is_restricted", "access_denied"}
)
CHANNEL_ERRORS = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "restricted_action"}
    | {"restricted_action_read_only_channel", "restricted_action_thread_only_channel"}
    | {"restricted_action_non_threadable_channel"}
)
MESSAGE_ERRORS = frozenset(
    {"invalid_blocks", "invalid_blocks_format", "invalid_metadata_format", "invalid_metadata_schema"}
    | {"metadata_too_large", "msg_too_long", "no_text", "invalid_arguments", "thread_not_found"}
)
TRANSIENT_STATUSES = frozenset({408, 429})
MAYBE_POSTED_STATUSES = frozenset({500, 502, 504})
MAYBE_POSTED_ERRORS = frozenset({"fatal_error", "internal_error", "request_timeout"})
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
"""What a call raises when no answer came back (aiohttp's errors, timeouts, sockets)."""

HINTS = {
    "not_in_channel": "Invite the bot there: `/invite @services-bot`.",
    "channel_not_found": "The channel is gone or the bot cannot see it: invite the bot, or `/services unwatch` there.",
    "is_archived": "The channel is archived: unarchive it, or remove its watches.",
}


@dataclass(frozen=True, slots=True)
class SlackFailure:
    """One failed call: Slack's error code (or what stood in for an answer), the HTTP status, Retry-After."""

    error: str
    status: int | None = None
    retry_after: float | None = None
    maybe_posted: bool = False
    """The call may have reached Slack and been carried out although it failed (see the module docstring)."""

    @property
    def scope(self) -> Scope:
        if self.status is None or self.status >= 500 or self.status in TRANSIENT_STATUSES:
            return "transient"
        if self.error in TRANSIENT_ERRORS:
            return "transient"
        if self.error in TOKEN_ERRORS:
            return "token"
        if self.error in CHANNEL_ERRORS:
            return "channel"
        return "message"

    @property
    def heals(self) -> bool:
        return self.scope == "transient"

    @property
    def metric_label(self) -> str:
        """A bounded label: a known error code, ``http_<status>`` or ``network``, else ``other``."""
        if self.status is None:
            return "network"
        if self.error in TRANSIENT_ERRORS | TOKEN_ERRORS | CHANNEL_ERRORS | MESSAGE_ERRORS:
            return self.error
        return f"http_{self.status}" if self.status != 200 else "other"

    def describe(self) -> str:
        """``fatal_error (HTTP 500)``, ``not_in_channel``, ``network: ClientConnectorError``."""
        if self.status is None or self.status == 200:
            return self.error
        return f"{self.error} (HTTP {self.status})"

    def __str__(self) -> str:
        return self.describe()

    @property
    def hint(self) -> str:
        return HINTS.get(self.error, "Alerts there are dropped until it is fixed.")


def failure_of(exc: BaseException) -> SlackFailure:
    """Read a ``SlackApiError`` or a network error raised by slack_sdk's async client."""
    if isinstance(exc, SlackApiError) and exc.response is not None:
        response = exc.response
        status = int(response.status_code or 200)
        data = response.data if isinstance(response.data, dict) else {}
        error = str(data.get("error") or f"HTTP {status}")
        retry_after = _retry_after(response.headers) if status == 429 else None
        maybe = status in MAYBE_POSTED_STATUSES or (status < 500 and error in MAYBE_POSTED_ERRORS)  # 503: not done
        return SlackFailure(error, status, retry_after, maybe_posted=maybe)
    sent = not isinstance(exc, aiohttp.ClientConnectorError)  # no connection: the request never left
    return SlackFailure(f"network: {type(exc).__name__}", maybe_posted=sent)


def _retry_after(headers: Any) -> float:
    """Seconds from a 429's ``Retry-After`` (1 when missing or unreadable, as Slack's default)."""
    try:
        return max(0.0, float(headers.get("Retry-After") or 1))
    except (AttributeError, TypeError, ValueError):
        return 1.0
