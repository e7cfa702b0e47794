"""How long each piece of user input may be, in one place, and the one error for input that is too long.

Every surface (Slack, ``services-bot ask``, MCP) goes through these bounds, so an oversized argument is a clear
``QueryError`` naming the limit instead of a URL too long for ModelArts, a frozen event loop or an "unexpected
exception". The error quotes only a short prefix of what was given: echoing a megabyte back helps no one.
"""

from __future__ import annotations

from services_bot.core.errors import QueryError

MAX_COMMAND_CHARS = 1000
"""A whole ``/services`` (or ``ask``) command. The answer's buttons carry the command text in their value, which
Slack caps at 2000 characters, so a longer command could not be paged anyway; real commands are far shorter."""
MAX_PATTERN_CHARS = 200
"""A ``name:`` filter or watch pattern. Matching costs at most name length x pattern length (core.glob)."""
MAX_ID_CHARS = 128
"""``ws:``/``workspace_id``, ``model:``/``model_id``, ``target:``: ids are 32-36 characters, targets short names."""
MAX_TAGS_CHARS = 512
"""``tag:``/``tags``, passed to the API verbatim (``key|value,key|value``)."""
MAX_SERVICE_REF_CHARS = 200
"""A service id or exact name (``show``, ``history``, ``mute``, ``get_service``): names are at most 128."""
MAX_CURSOR_CHARS = 200
"""An opaque ``cursor``: the ones this bot issues are about 40 characters."""
MAX_DURATION_CHARS = 32
"""A duration such as ``1h30m``; also keeps ``int()`` far from Python's 4300-digit limit."""
PREVIEW_CHARS = 40
"""How much of an oversized input an error quotes."""


def preview(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The start of ``text``, cut with an ellipsis, for error messages that must not echo the whole input."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_length(what: str, value: str, limit: int, *, hint: str | None = None) -> str:
    """``value`` unchanged when it fits in ``limit`` characters, else a ``QueryError`` saying which limit."""
    if len(value) <= limit:
        return value
    raise QueryError(
        f"The {what} is {len(value):,} characters long; at most {limit} are allowed ('{preview(value)}').",
        hint=hint or f"Shorten the {what} to {limit} characters or fewer.",
    )
