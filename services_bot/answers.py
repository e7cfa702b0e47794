"""Answers to ``/services``-style commands rendered for the terminal or for scripts: what ``ask`` prints and
what the demo shows, in one place both import (the command line and the demo do not import each other)."""

from __future__ import annotations

import json
from typing import Any

from services_bot.core.errors import ServicesBotError
from services_bot.core.grammar import (
    HELP_TEXT,
    EventsCommand,
    HelpCommand,
    ListCommand,
    LoadCommand,
    NotificationCommand,
    ShowCommand,
    parse_command,
)
from services_bot.core.insights import ServiceInsights
from services_bot.core.query import ServiceQueries
from services_bot.text import render_list, render_load, render_service, render_summary, render_timeline


class Answer(str):
    """A rendered answer; ``complete`` is false when it stands on a partial listing (the exit code says so)."""

    complete: bool = True


def _answered(text: str, complete: bool) -> Answer:
    out = Answer(text)
    out.complete = complete
    return out


async def answer(queries: ServiceQueries, text: str, *, as_json: bool) -> str:
    """Run one ``/services``-style command and render it for the terminal or for scripts."""
    command = parse_command(text)
    if isinstance(command, HelpCommand):
        return json.dumps({"help": HELP_TEXT}) if as_json else HELP_TEXT
    if isinstance(command, NotificationCommand):
        raise ServicesBotError(
            f"`{command.verb}` manages Slack channel notifications.",
            hint="Use it from Slack with /services; `ask` answers queries only.",
        )
    if isinstance(command, ShowCommand):
        service, why = await ServiceInsights(queries).show(command.ref, target=command.target)
        if as_json:
            data = service.model_dump(mode="json", exclude_none=True)
            if why is not None:
                data["why"] = why.model_dump(mode="json", exclude_none=True)
            return dumps_json(data)
        return render_service(service, why)
    if isinstance(command, EventsCommand):
        service = await queries.get(command.ref, target=command.target)
        timeline = await ServiceInsights(queries).timeline(service, since=command.since, kind=command.kind)
        return (
            dumps_json(timeline.model_dump(mode="json", exclude_none=True))
            if as_json
            else render_timeline(service, timeline)
        )
    if isinstance(command, LoadCommand):
        service = await queries.get(command.ref, target=command.target)
        load = await ServiceInsights(queries).load(service)
        return dumps_json(load.model_dump(mode="json", exclude_none=True)) if as_json else render_load(service, load)
    if isinstance(command, ListCommand):
        result = await queries.list(command.query)
        shown = dumps_json(result.model_dump(mode="json", exclude_none=True)) if as_json else render_list(result)
        return _answered(shown, result.complete)
    summary = await queries.summary(command.query)
    shown = dumps_json(summary.model_dump(mode="json", exclude_none=True)) if as_json else render_summary(summary)
    return _answered(shown, summary.complete)


def dumps_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
