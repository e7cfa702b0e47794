"""Shell-style globs (``*``, ``?``, ``[...]``, ``[!...]``) compiled to a regex that cannot backtrack.

``fnmatch.translate`` is quadratic in the pattern on an unclosed ``[`` (each one scans to the end for a ``]``),
and a naive translation of ``*`` into ``.*`` backtracks exponentially in the number of stars. Both froze the
whole process. Here:

- translation is one pass, O(len(pattern)): the search for a class's closing ``]`` is skipped when no ``]`` is
  left, and otherwise consumes what it scanned;
- a glob is fixed-length pieces separated by stars. The first piece is anchored at the start, the last at the
  end, and each piece in between is matched at its *earliest* position inside an atomic group ``(?>.*?piece)``:
  for globs the earliest match is always a right choice, so the regex engine never needs to come back to it.
  Matching one name therefore costs at most len(name) x len(pattern) character comparisons, with no
  backtracking between stars (a ``name:`` pattern is at most 200 characters: ``core.limits``).

The semantics are ``fnmatch.fnmatchcase``'s: an unclosed ``[`` is a literal ``[`` (as is ``[!]`` with nothing
after it), ``]`` right after ``[`` or ``[!`` belongs to the class, a leading or trailing ``-`` in a class is
literal, an empty range such as ``z-a`` matches nothing, and there is no escape character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

_CLASS_SPECIALS = frozenset("\\]^-[&~|")


def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regex that ``match``es exactly the strings ``pattern`` matches (case-sensitive: lower both sides)."""
    pieces = _pieces(_tokens(pattern))
    if len(pieces) == 1:
        body = pieces[0] + r"\Z"
    else:
        middle = "".join(f"(?>.*?{piece})" for piece in pieces[1:-1] if piece)
        body = pieces[0] + middle + ".*" + pieces[-1] + r"\Z"
    return re.compile(f"(?s:{body})")


def _pieces(tokens: Iterator[str | None]) -> list[str]:
    """The fixed-length pieces between stars, as regex text; N stars give N + 1 pieces (runs of stars count once)."""
    pieces: list[list[str]] = [[]]
    after_star = False
    for token in tokens:
        if token is None:
            if not after_star:
                pieces.append([])
        else:
            pieces[-1].append(token)
        after_star = token is None
    return ["".join(piece) for piece in pieces]


def _tokens(pattern: str) -> Iterator[str | None]:
    """None for ``*``, else one regex atom per character or class (each matches one character), in one pass."""
    last_close = pattern.rfind("]")
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            yield None
        elif char == "?":
            yield "."
        elif char == "[":
            start = i + 1
            if start < n and pattern[start] == "!":
                start += 1
            if start < n and pattern[start] == "]":
                start += 1
            close = pattern.find("]", start) if start <= last_close else -1
            if close >= 0:
                yield _class(pattern[i + 1 : close])
                i = close + 1
                continue
            yield re.escape(char)
        else:
            yield re.escape(char)
        i += 1


def _class(inside: str) -> str:
    """``[...]`` without its brackets (``!`` first negates) as a regex atom; empty ranges are dropped."""
    negated = inside.startswith("!")
    if negated:
        inside = inside[1:]
    parts: list[str] = []
    k = 0
    while k < len(inside):
        if k + 2 < len(inside) and inside[k + 1] == "-":
            low, high = inside[k], inside[k + 2]
            if low <= high:
                parts.append(_class_char(low) + "-" + _class_char(high))
            k += 3
        else:
            parts.append(_class_char(inside[k]))
            k += 1
    if not parts:
        return "." if negated else "(?!)"
    return "[" + ("^" if negated else "") + "".join(parts) + "]"


def _class_char(char: str) -> str:
    """A character inside a regex class: escaped when it is special there (or could start a set operation)."""
    return "\\" + char if char in _CLASS_SPECIALS else char
