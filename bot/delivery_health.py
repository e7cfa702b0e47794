"""What ``/healthz`` says about alert delivery, as pure rules over what the worker saw and what the store holds.

- **unhealthy** (HTTP 503, a ``problems`` line): alerts cannot be delivered. Either the oldest undelivered
  alert has waited longer than ``stale_seconds`` (Slack down, throttling for long, a stuck worker: the backlog
  is in the store, so this holds across restarts), or Slack refused the bot's token on the last post and no
  post has succeeded since (``invalid_auth``, ``token_revoked``, ``missing_scope``…).
- **degraded** (HTTP 200, a ``warnings`` line): alerts flow, but Slack refuses some channel for good
  (``not_in_channel``, ``channel_not_found``…) or refused a message there; cleared by the next post that
  channel takes.
- **ok** otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services_bot.bot.slack_errors import SlackFailure


@dataclass(frozen=True)
class DeliveryReport:
    problems: list[str]
    warnings: list[str]
    body: dict[str, Any]


@dataclass
class DeliveryHealth:
    """What the delivery worker has seen since it started; the backlog itself is read from the store."""

    last_success_at: datetime | None = None
    last_failure: SlackFailure | None = None
    last_failure_at: datetime | None = None
    last_failure_channel: str | None = None
    token_refused: SlackFailure | None = None
    refused_channels: dict[str, SlackFailure] = field(default_factory=dict)
    streak: int = 0
    """Transient failures in a row, whatever the channel: the backoff grows with it."""

    def succeeded(self, channel: str) -> None:
        self.last_success_at = datetime.now(UTC)
        self.token_refused = None
        self.refused_channels.pop(channel, None)
        self.streak = 0

    def failed(self, channel: str, failure: SlackFailure) -> None:
        self.last_failure, self.last_failure_at, self.last_failure_channel = failure, datetime.now(UTC), channel
        if failure.scope == "transient":
            self.streak += 1
        elif failure.scope == "token":
            self.token_refused = failure
        else:
            self.refused_channels[channel] = failure

    def last_transient(self) -> SlackFailure | None:
        return self.last_failure if self.last_failure is not None and self.last_failure.heals else None

    def report(
        self, undelivered: int, oldest: datetime | None, failed_last_day: int, *, stale_seconds: float
    ) -> DeliveryReport:
        now = datetime.now(UTC)
        age = (now - oldest).total_seconds() if oldest is not None else None
        problems: list[str] = []
        if self.token_refused is not None:
            problems.append(
                f"Slack refuses the bot's token ({self.token_refused.error}): no alert can be posted until the "
                f"token or the app's scopes are fixed; {undelivered} alert(s) held until then"
            )
        if age is not None and age > stale_seconds:
            last = f"; last Slack error: {self.last_failure.describe()}" if self.last_failure else ""
            problems.append(f"{undelivered} alert(s) undelivered, the oldest queued {age:.0f} s ago{last}")
        warnings = [_refusal(channel, failure) for channel, failure in sorted(self.refused_channels.items())]
        body = {
            "undelivered": undelivered,
            "oldest_undelivered_age_seconds": round(age, 1) if age is not None else None,
            "last_success_age_seconds": _age(self.last_success_at, now),
            "last_error": self._last_error(now),
            "refused_channels": {c: f.error for c, f in sorted(self.refused_channels.items())},
            "failed_last_24h": failed_last_day,
        }
        return DeliveryReport(problems, warnings, body)

    def _last_error(self, now: datetime) -> dict[str, Any] | None:
        if self.last_failure is None:
            return None
        return {
            "error": self.last_failure.describe(),
            "channel": self.last_failure_channel,
            "age_seconds": _age(self.last_failure_at, now),
            "heals": self.last_failure.heals,
        }


def _refusal(channel: str, failure: SlackFailure) -> str:
    if failure.scope == "channel":
        return f"Slack refuses alerts for {channel} ({failure.error}); they are dropped until that is fixed"
    return f"Slack refused an alert for {channel} ({failure.error}); that alert was dropped"


def _age(moment: datetime | None, now: datetime) -> float | None:
    return round((now - moment).total_seconds(), 1) if moment is not None else None
