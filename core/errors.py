"""One exception hierarchy for everything the core layer can report.

Every error carries a ``hint``: what the person (or agent) should do next. Surfaces (Slack, MCP, CLI) render
``str(error)`` and ``error.hint`` and never a traceback, so the text must stand on its own and must never
contain a secret.
"""

from __future__ import annotations


class ServicesBotError(Exception):
    """Base of every error the product reports to a user."""

    hint: str = ""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if hint is not None:
            self.hint = hint

    def user_text(self) -> str:
        """The message plus its hint, as one or two sentences for a human."""
        return f"{self.message} {self.hint}".strip() if self.hint else self.message


class ConfigError(ServicesBotError):
    """The configuration is missing or inconsistent; raised before any request is made."""


class CannotListenError(ConfigError):
    """The address a server was to listen on cannot be had (most often: the port is in use)."""


class QueryError(ServicesBotError):
    """A query or a command could not be understood; ``suggestion`` holds the likely intended word."""

    def __init__(self, message: str, *, hint: str | None = None, suggestion: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.suggestion = suggestion


class ServiceNotFoundError(ServicesBotError):
    """No service has this id or name; ``closest`` lists names that look like it."""

    def __init__(self, ref: str, closest: list[str] | None = None) -> None:
        self.ref = ref
        self.closest = closest or []
        hint = (
            "Did you mean " + ", ".join(f"'{n}'" for n in self.closest) + "?"
            if self.closest
            else "Check the id or name, or list services to find it."
        )
        super().__init__(f"No service with id or name '{ref}'.", hint=hint)


class AmbiguousServiceError(ServicesBotError):
    """Several services share a name; the caller must pick one by id."""

    def __init__(self, ref: str, candidates: list[dict[str, str | None]]) -> None:
        self.ref = ref
        self.candidates = candidates
        listed = "; ".join(
            f"{c.get('service_id')} (workspace {c.get('workspace_id') or '?'}, {c.get('status') or '?'})"
            for c in candidates
        )
        super().__init__(
            f"{len(candidates)} services are named '{ref}': {listed}.",
            hint="Ask again with the service id.",
        )


class ApiError(ServicesBotError):
    """The ModelArts API (or IAM) answered with an error.

    ``status`` is the HTTP status (0 when no HTTP answer came), ``error_code``/``error_msg`` come from the
    body when it had them, ``request_id`` from the response headers, ``attempts`` counts tries made.
    """

    hint = "Try again later; if it persists, check the ModelArts console."

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        error_code: str | None = None,
        error_msg: str | None = None,
        request_id: str | None = None,
        attempts: int = 1,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_code = error_code
        self.error_msg = error_msg
        self.request_id = request_id
        self.attempts = attempts

    def details(self) -> str:
        """A compact technical line (for logs and ``--json``), secrets never included."""
        parts = [f"HTTP {self.status}" if self.status else "no HTTP answer"]
        if self.error_code:
            parts.append(self.error_code)
        if self.request_id:
            parts.append(f"request id {self.request_id}")
        if self.attempts > 1:
            parts.append(f"{self.attempts} attempts")
        return ", ".join(parts)


class BadRequestError(ApiError):
    """HTTP 400: the API rejected a parameter. Not retried."""

    hint = "Check the filter values; `help` lists the valid ones."


class AuthenticationError(ApiError):
    """HTTP 401, or IAM refused the credentials. Not retried (beyond one token refresh)."""

    hint = (
        "Check MODELARTS_AUTH_TOKEN (tokens expire after 24 h), the IAM user/password, or the AK/SK "
        "(and that the machine's clock is right for AK/SK signing)."
    )


class ForbiddenError(ApiError):
    """HTTP 403: authenticated, but not allowed (wrong project, missing ModelArts permission)."""

    hint = "Check MODELARTS_PROJECT_ID and that the user has ModelArts read permission in that project."


class ApiNotFoundError(ApiError):
    """HTTP 404 from the API (unknown service id, or a wrong endpoint)."""

    hint = "Check the service id, the project id and MODELARTS_ENDPOINT/MODELARTS_REGION."


class RateLimitedError(ApiError):
    """HTTP 429 after the retries ran out; ``retry_after`` is the server's advice in seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after
        wait = f"{round(retry_after)} s" if retry_after else "a few seconds"
        self.hint = f"ModelArts is throttling requests; try again in {wait}."


class ServerError(ApiError):
    """HTTP 5xx after the retries ran out."""

    hint = "ModelArts is having trouble; try again in a minute."


class UnavailableError(ApiError):
    """No HTTP answer at all (connection refused, DNS failure, timeouts) after the retries ran out."""

    hint = "Check MODELARTS_ENDPOINT/MODELARTS_REGION and the network path to ModelArts."


class MalformedResponseError(ApiError):
    """The API answered 2xx with a body that is not the documented JSON."""

    hint = "The API sent an unreadable answer; try again, and report it if it persists."


class IncompleteListingError(MalformedResponseError):
    """A listing ended short of the ``total_count`` the server itself announced.

    ``services`` holds the rows that did arrive, so a surface can show them with a warning instead of passing
    a partial fleet off as the whole one; ``served`` and ``total`` are the two counts that disagree.
    """

    hint = (
        "The answer below is incomplete. Try again; if it persists, lower SERVICES_BOT_PAGE_SIZE or report it: "
        "the server stopped paging early."
    )

    def __init__(self, message: str, *, served: int, total: int, services: list[object] | None = None) -> None:
        super().__init__(message)
        self.served = served
        self.total = total
        self.services = services if services is not None else []


class StoreError(ServicesBotError):
    """The watcher's store cannot do its job: the message names the file and what is wrong with it, the hint
    the fix. ``kind`` is what went wrong: ``full``, ``read-only``, ``damaged``, ``io``, ``busy``, ``cannot-open``,
    ``unreachable``, ``missing``, ``deleted`` or ``replaced``.

    A separate type because it is neither the API's fault nor a bug: the watcher must not count it as a
    ModelArts outage, and an answer must say "the store's disk is full", not "something went wrong"."""

    def __init__(self, message: str, *, hint: str, kind: str) -> None:
        super().__init__(message, hint=hint)
        self.kind = kind
