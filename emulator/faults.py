"""Fault injection: latency, error statuses, random 500s, throttling, malformed bodies, short token lives.

Faults are "gateway" behaviour: they apply to API (and optionally IAM) requests after authentication and
before the handler, never to the ``/_emulator/`` control API, so a test can always reach the controls.
Counted faults (``error_count``, ``rate_limit_count``, ``malformed_count``, ``listing_body_count``) are
consumed one per matching request; random errors come from a seeded RNG so a failing test can be replayed.

Two faults act inside the list handler instead, because they change what a listing sees rather than answer
in its place: ``delete_during_listing`` deletes services from a page just served (later rows shift back, as
when services are deleted while a client pages through offsets), and ``hide_fraction`` leaves a share of the
fleet out of ``hide_listings`` whole listings (a listing starts at an ``offset=0`` page), as a backend that
briefly answers with a partial fleet.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

T = TypeVar("T")
ERROR_BODIES = ("json", "html", "empty")
#: 200 answers to GET /v1/{project_id}/services that are not a listing (``listing_body``)
LISTING_BODIES = ("empty_object", "null_services", "error_envelope", "legacy_failure", "v2_shape", "half_page")

#: error_code and error_msg used for injected JSON errors, by HTTP status
FAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("ModelArts.0101", "Invalid request (injected fault)."),
    401: ("APIGW.0301", "Incorrect IAM authentication information: injected fault"),
    403: ("ModelArts.0106", "Forbidden (injected fault)."),
    404: ("ModelArts.3502", "Resource does not exist (injected fault)."),
    408: ("APIGW.0203", "Request timeout (injected fault)."),
    429: (
        "APIGW.0308",
        "The throttling threshold has been reached: policy user over ratelimit,limit:100,time:1 minute",
    ),
    500: ("ModelArts.0010", "Internal server error."),
    502: ("APIGW.0202", "Backend unavailable."),
    503: ("ModelArts.0011", "Service temporarily unavailable, please try again later."),
    504: ("APIGW.0203", "Backend timeout."),
}
HTML_BODIES: dict[int, str] = {
    500: "<html>Internal Server Error</html>",
    502: "<html>Bad Gateway</html>",
    503: "<html>Service Unavailable</html>",
    504: "<html>Gateway Timeout</html>",
}


#: messages of the documented codes a test may inject with ``error_code`` (v1-service-events-monitor-logs.md)
CODE_MESSAGES: dict[str, str] = {
    "ModelArts.0201": "No token.",
    "ModelArts.0202": "Token expired.",
    "ModelArts.0204": "Token parsing failed.",
    "ModelArts.0206": "Invalid AK/SK.",
    "ModelArts.0108": "No permission for the operation.",
    "ModelArts.0210": "The project ID in the URL does not match the token.",
}


def fault_error(status: int, code: str | None = None) -> tuple[str, str]:
    if code is not None:
        return code, CODE_MESSAGES.get(code, f"Injected fault {code}.")
    return FAULT_ERRORS.get(status, ("ModelArts.0010", f"Injected fault: HTTP {status}."))


def html_body(status: int) -> str:
    return HTML_BODIES.get(status, f"<html>Error {status}</html>")


@dataclass
class Faults:
    """The current faults; ``merge`` validates and applies a partial update (the control API body)."""

    latency_ms: float = 0.0
    error_status: int | None = None
    error_count: int = 0
    error_after: int = 0  # matching requests let through before the counted errors start (fail mid-listing)
    error_body: str = "json"
    error_code: str | None = None  # the error_code of injected JSON errors (default: one per status)
    error_rate: float = 0.0
    rate_limit_count: int = 0
    retry_after: int = 1
    malformed_count: int = 0
    listing_body: str = "empty_object"  # what a bad 200 to the list route says (LISTING_BODIES)
    listing_body_count: int = 0  # list requests answered HTTP 200 with ``listing_body`` instead of the page
    token_ttl_seconds: float | None = None
    paths: list[str] | None = None
    delete_during_listing: int = 0  # after a list page that is not the last: delete that many of its services, once
    hide_fraction: float = 0.0  # the share of the matching services that a hiding listing leaves out
    hide_listings: int = 0  # listings (from an offset=0 page on) that hide `hide_fraction`, one consumed per listing
    # v2 answers that break v2's own paging rules (while on, every v2 list page):
    v2_short_page: bool = False  # a page before the last serves one row fewer than `size`; `total` counts it
    v2_pages_overflow: bool = False  # `pages` says one page fewer than `total` needs; the page at `pages` has rows

    def __post_init__(self) -> None:
        self.hiding = 0.0  # the share hidden by the listing in progress (its offset=0 page chose it); not a fault

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def merge(self, body: dict[str, Any]) -> None:
        """Apply ``body`` after checking every value; raises ``ValueError`` and changes nothing if one is bad.

        ``error_status`` given without ``error_count`` arms one error, so ``{"error_status": 503}`` does the
        obvious thing instead of nothing; likewise ``hide_fraction`` without ``hide_listings`` hides one listing.
        """
        known = {f.name for f in fields(self)}
        clean: dict[str, Any] = {}
        for key, value in body.items():
            if key not in known:
                raise ValueError(f"unknown fault {key!r}; known: {', '.join(sorted(known))}")
            clean[key] = self._check(key, value)
        if clean.get("error_status") is not None and "error_count" not in clean and self.error_count == 0:
            clean["error_count"] = 1
        if clean.get("hide_fraction") and "hide_listings" not in clean and self.hide_listings == 0:
            clean["hide_listings"] = 1
        for key, value in clean.items():
            setattr(self, key, value)

    @staticmethod
    def _check(key: str, value: Any) -> Any:
        def number(v: Any) -> bool:
            return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

        if key in (
            "error_count",
            "error_after",
            "rate_limit_count",
            "malformed_count",
            "listing_body_count",
            "delete_during_listing",
            "hide_listings",
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer")
            return value
        if key == "error_status":
            if value is None:
                return None
            if not isinstance(value, int) or isinstance(value, bool) or not 400 <= value <= 599:
                raise ValueError("error_status must be an HTTP error status (400-599) or null")
            return value
        if key == "listing_body":
            if value not in LISTING_BODIES:
                raise ValueError(f"listing_body must be one of {', '.join(LISTING_BODIES)}")
            return value
        if key == "error_code":
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError("error_code must be a non-empty string or null")
            return value
        if key == "error_body":
            if value not in ERROR_BODIES:
                raise ValueError(f"error_body must be one of {', '.join(ERROR_BODIES)}")
            return value
        if key in ("v2_short_page", "v2_pages_overflow"):
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false")
            return value
        if key in ("error_rate", "hide_fraction"):
            if not number(value) or value > 1:
                raise ValueError(f"{key} must be a probability between 0 and 1")
            return float(value)
        if key == "latency_ms":
            if not number(value):
                raise ValueError("latency_ms must be a non-negative number")
            return float(value)
        if key == "retry_after":
            if not number(value):
                raise ValueError("retry_after must be a non-negative number of seconds")
            return math.ceil(value)
        if key == "token_ttl_seconds":
            if value is None:
                return None
            if not number(value):
                raise ValueError("token_ttl_seconds must be a non-negative number or null")
            return value
        if key == "paths":
            if value is None:
                return None
            if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
                raise ValueError("paths must be a list of non-empty strings or null")
            return list(value)
        raise ValueError(f"unknown fault {key!r}")  # pragma: no cover - guarded by merge

    def applies_to(self, path: str) -> bool:
        """Default: every ModelArts API path (``/v1/``, ``/v2/``); with ``paths``: those containing a substring."""
        if path.startswith("/_emulator"):
            return False
        if self.paths is None:
            return path.startswith(("/v1/", "/v2/"))
        return any(p in path for p in self.paths)


@dataclass
class FaultAction:
    """What the gateway must answer instead of calling the handler."""

    kind: str  # "rate_limit" | "error" | "random_error"
    status: int
    body: str  # "json" | "html" | "empty"
    retry_after: int | None = None
    code: str | None = None


def take_fault(faults: Faults, rng: random.Random) -> FaultAction | None:
    """Consume the next pending fault for one matching request, in a fixed order of precedence."""
    if faults.rate_limit_count > 0:
        faults.rate_limit_count -= 1
        return FaultAction("rate_limit", 429, "json", faults.retry_after)
    if faults.error_count > 0 and faults.error_status is not None:
        if faults.error_after > 0:
            faults.error_after -= 1
            return None
        faults.error_count -= 1
        return FaultAction("error", faults.error_status, faults.error_body, code=faults.error_code)
    if faults.error_rate > 0 and rng.random() < faults.error_rate:
        return FaultAction("random_error", 500, "json")
    return None


def take_bad_listing(faults: Faults) -> str | None:
    """The kind of non-listing 200 the next list request gets, if one is armed."""
    if faults.listing_body_count > 0:
        faults.listing_body_count -= 1
        return faults.listing_body
    return None


def take_malformed(faults: Faults) -> bool:
    if faults.malformed_count > 0:
        faults.malformed_count -= 1
        return True
    return False


def take_listing_deletions(faults: Faults) -> int:
    """How many services to delete from the page just served (all of ``delete_during_listing``, consumed once)."""
    count, faults.delete_during_listing = faults.delete_during_listing, 0
    return count


def listing_hidden_share(faults: Faults, first_page: bool) -> float:
    """The share of the fleet this list request leaves out: a first page (``offset=0``) starts a listing and
    consumes one of ``hide_listings``; later pages keep what their listing's first page chose."""
    if first_page:
        faults.hiding = 0.0
        if faults.hide_listings > 0:
            faults.hide_listings -= 1
            faults.hiding = faults.hide_fraction
    return faults.hiding


def without_hidden(services: list[T], share: float) -> list[T]:
    """``services`` minus ``share`` of them, spread evenly (the same ones for the same list): 1.0 leaves none."""
    if share <= 0:
        return services
    return [s for i, s in enumerate(services) if int((i + 1) * share) == int(i * share)]
