"""Tool arguments checked against each tool's own input schema, before pydantic sees them.

Models slip in predictable ways: a misspelled argument name (which pydantic would silently drop), one status
as a string instead of a list, ``"FAILED"`` in capitals, a value far too long. Each slip is either forgiven
(a lone string becomes a one-item list, enumerated words are matched case-insensitively) or refused in one or
two sentences that name the argument and what is allowed: no pydantic report, no documentation link, and at
most a short prefix of what was sent. Everything here is pure: schema and arguments in, arguments or an
``ArgumentError`` out.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from services_bot.core.limits import preview
from services_bot.core.suggest import did_you_mean

MAX_LIST_ITEMS = 50
"""Most items in a list argument (statuses, to_status): there are ten statuses, so more is a mistake."""


class ArgumentError(Exception):
    """A tool call whose arguments cannot be used; the message says which one and what is allowed."""


def _variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The non-null alternatives of a property (``X | None`` is an ``anyOf`` with a null arm)."""
    options = schema.get("anyOf") or [schema]
    return [o for o in options if o.get("type") != "null"]


def _shape(schema: dict[str, Any]) -> tuple[bool, list[str] | None, int | None]:
    """(is a list, the allowed words if enumerated, the most characters) of one property's schema."""
    for option in _variants(schema):
        if option.get("type") == "array":
            items = option.get("items", {})
            return True, items.get("enum"), items.get("maxLength")
        if "enum" in option or "maxLength" in option or option.get("type") == "string":
            return False, option.get("enum"), option.get("maxLength", schema.get("maxLength"))
    return False, None, schema.get("maxLength")


def _word(name: str, value: Any, allowed: list[str] | None, limit: int | None) -> Any:
    """One string value: bounded, and matched case-insensitively against ``allowed`` when enumerated."""
    if not isinstance(value, str):
        return value
    if limit is not None and len(value) > limit:
        raise ArgumentError(
            f"Argument '{name}' is {len(value):,} characters long; at most {limit} are allowed ('{preview(value)}')."
        )
    if allowed is None:
        return value
    lowered = value.strip().lower()
    if lowered in allowed:
        return lowered
    guess = did_you_mean(lowered, allowed)
    hint = f" Did you mean '{guess}'?" if guess else ""
    raise ArgumentError(f"Argument '{name}' does not accept '{preview(value)}'.{hint} Allowed: {', '.join(allowed)}.")


def normalise(arguments: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``arguments`` checked and forgiven against ``schema`` (a tool's or prompt's input schema)."""
    properties: dict[str, Any] = schema.get("properties", {})
    result: dict[str, Any] = {}
    for name, value in arguments.items():
        if name not in properties:
            guess = did_you_mean(name, list(properties))
            hint = f"; did you mean '{guess}'?" if guess else "."
            valid = ", ".join(properties) or "none"
            raise ArgumentError(f"Unknown argument '{preview(name)}'{hint} Valid arguments: {valid}.")
        is_list, allowed, limit = _shape(properties[name])
        if is_list and isinstance(value, str):
            value = [value]  # one status where a list was asked for
        if is_list and isinstance(value, list):
            if len(value) > MAX_LIST_ITEMS:
                raise ArgumentError(f"Argument '{name}' has {len(value)} items; at most {MAX_LIST_ITEMS} are allowed.")
            value = [_word(name, v, allowed, limit) for v in value]
        else:
            value = _word(name, value, allowed, limit)
        result[name] = value
    return result


def explain(exc: ValidationError, tool: str) -> str:
    """A pydantic report on a tool's arguments as one or two sentences, without its text or links."""
    error = exc.errors()[0]
    loc = [str(p) for p in error["loc"] if not isinstance(p, int)]
    name = loc[0] if loc else "arguments"
    kind, ctx = error["type"], error.get("ctx") or {}
    given = error.get("input")
    shown = f" (got '{preview(str(given))}')" if isinstance(given, str | int | float) and kind != "missing" else ""
    messages = {
        "missing": f"Argument '{name}' is required.",
        "less_than_equal": f"Argument '{name}' must be at most {ctx.get('le')}{shown}.",
        "greater_than_equal": f"Argument '{name}' must be at least {ctx.get('ge')}{shown}.",
        "int_parsing": f"Argument '{name}' must be a whole number{shown}.",
        "int_type": f"Argument '{name}' must be a whole number{shown}.",
        "int_from_float": f"Argument '{name}' must be a whole number{shown}.",
        "string_type": f"Argument '{name}' must be a string.",
        "list_type": f"Argument '{name}' must be a list of strings.",
        "literal_error": f"Argument '{name}' must be one of {ctx.get('expected', 'the documented values')}{shown}.",
    }
    message = messages.get(kind, f"Argument '{name}' is not valid{shown}.")
    return f"{message} See the input schema of {tool} for what each argument takes."
