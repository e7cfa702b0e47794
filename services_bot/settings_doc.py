"""The configuration reference, generated from the settings model so the README cannot drift from the code.

``python -m services_bot.settings_doc`` prints the table; ``--write README.md`` replaces the part of the file
between the ``settings:start`` and ``settings:end`` markers. A test checks the README is up to date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo

from services_bot.core.config import Settings

START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def _names(name: str, info: FieldInfo) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice).upper() for choice in alias.choices]
    return [name.upper()]


def _default(info: FieldInfo) -> str:
    if info.annotation is SecretStr or "SecretStr" in str(info.annotation):
        return "—"
    value = info.get_default(call_default_factory=True)
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def markdown_table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        names = " or ".join(f"`{n}`" for n in _names(name, info))
        secret = " Secret: never logged." if "SecretStr" in str(info.annotation) else ""
        rows.append(f"| {names} | {_default(info)} | {(info.description or '').replace('|', '/')}{secret} |")
    return "\n".join(rows)


def replace_between_markers(text: str, table: str) -> str:
    if START not in text or END not in text:
        raise ValueError(f"the file has no {START} … {END} markers")
    head, rest = text.split(START, 1)
    _old, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--write", type=Path, help="update this file between the markers instead of printing")
    args = parser.parse_args(argv)
    table = markdown_table()
    if args.write:
        args.write.write_text(replace_between_markers(args.write.read_text(encoding="utf-8"), table), encoding="utf-8")
    else:
        sys.stdout.write(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
