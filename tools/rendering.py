"""The text content of tool results: everything a model needs, for clients that show it nothing else.

Many clients (and every 2024-era session, which has no ``structuredContent``) hand the model only the text.
So a list answer's text holds every returned row, the total and the literal ``next_cursor``; one service's
text is its fields as compact JSON. Rows are a table with one header line, columns that are empty in every
row left out, so the text stays a fraction of the API's JSON for the same services.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel

MAX_CELL_CHARS = 300
"""A cell (an error message, a description) is cut here in the text; the structured content has it whole."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(_cell(v) for v in value)
    text = " ".join(str(value).split()).replace("|", "¦")  # one line per row, and | only between cells
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"


def table(rows: Sequence[BaseModel], columns: Iterable[str]) -> list[str]:
    """``rows`` as ``a | b | c`` lines under a header naming the columns; columns empty in every row are left
    out (a listing without failures has no error column)."""
    if not rows:
        return []
    cells = [{c: _cell(getattr(r, c, None)) for c in columns} for r in rows]
    kept = [c for c in columns if any(row[c] for row in cells)]
    return [" | ".join(kept), *(" | ".join(row[c] for c in kept) for row in cells)]


def paging_line(total: int, returned: int, next_cursor: str | None, what: str) -> str:
    """The counts and the cursor, literally: without it a text-only client could never ask for page two."""
    cursor = (
        f'next_cursor: "{next_cursor}" (pass it as cursor, with the same other arguments, for the next page)'
        if next_cursor
        else "next_cursor: null (this is the last page)"
    )
    return f"total: {total} {what}; returned: {returned}; {cursor}"


def warning_lines(warnings: list[str], complete: bool) -> list[str]:
    """A partial answer must say so in the text, not only in the structure."""
    return [f"INCOMPLETE: {w}" for w in warnings] if not complete else [f"warning: {w}" for w in warnings]


def compact_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
