"""When and how long to wait before trying a request again.

Exponential backoff with full jitter, capped per wait and bounded in count and in total time; the server's
``Retry-After`` wins over our own guess when it fits in the remaining budget.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_seconds: float = 0.2
    cap_seconds: float = 5.0
    budget_seconds: float = 20.0
    rng: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def backoff(self, retry_number: int) -> float:
        """Full jitter: uniform in [base/2, min(cap, base * 2^n)], never zero so bursts spread out."""
        ceiling = min(self.cap_seconds, self.base_seconds * (2 ** (retry_number - 1)))
        return self.rng.uniform(min(self.base_seconds / 2, ceiling), ceiling)

    def wait_before(self, retry_number: int, retry_after: float | None, remaining: float) -> float | None:
        """Seconds to wait before retry ``retry_number`` (1-based), or None when we must give up."""
        if retry_number > self.max_retries:
            return None
        wait = retry_after if retry_after is not None else self.backoff(retry_number)
        return wait if wait <= remaining else None


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as delta-seconds or an HTTP date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
