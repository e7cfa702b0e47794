"""The /services grammar: what people type, and the mistakes they make, become commands or clear errors."""

from __future__ import annotations

import pytest
from services_bot.core.errors import QueryError
from services_bot.core.grammar import (
    HelpCommand,
    ListCommand,
    NotificationCommand,
    ShowCommand,
    SummaryCommand,
    parse_command,
)


def listing(text: str) -> ListCommand:
    command = parse_command(text)
    assert isinstance(command, ListCommand)
    return command


@pytest.mark.parametrize("text", ["", "help", "  ", "?"])
def test_empty_or_help_gives_help(text: str) -> None:
    assert isinstance(parse_command(text), HelpCommand)


def test_one_status_and_several_statuses() -> None:
    assert listing("running").query.statuses == {"running"}
    assert listing("running,concerning").query.statuses == {"running", "concerning"}
    assert listing("upgrading stopped").query.statuses == {"upgrading", "stopped"}


def test_failed_takes_the_v2_error_status_with_it() -> None:
    assert listing("failed").query.statuses == {"failed", "error"}
    assert listing("error").query.statuses == {"error"}


def test_unhealthy_means_failed_error_and_concerning() -> None:
    assert listing("unhealthy").query.statuses == {"failed", "concerning", "error"}


def test_filters_sort_order_limit_and_public() -> None:
    command = listing("unhealthy type:real-time ws:0 model:m1 tag:team=ocr sort:name order:desc limit:5 public")
    query = command.query
    assert (query.infer_type, query.workspace_id, query.model_id, query.tags) == ("real-time", "0", "m1", "team=ocr")
    assert (query.sort, query.effective_order, query.limit) == ("name", "desc", 5)
    assert command.public


def test_default_order_is_newest_change_first_and_names_ascending() -> None:
    assert listing("failed").query.effective_order == "desc"
    assert listing("sort:name").query.effective_order == "asc"


def test_bare_word_is_a_name_filter_and_quotes_group_words() -> None:
    assert listing("ocr").query.name == "ocr"
    assert listing('name:"ocr prod"').query.name == "ocr prod"
    assert listing("name:“ocr prod”").query.name == "ocr prod"  # curly quotes from chat clients


def test_summary_and_show() -> None:
    summary = parse_command("summary type:batch")
    assert isinstance(summary, SummaryCommand) and summary.query.infer_type == "batch"
    show = parse_command("show ocr-prod target:eu public")
    assert show == ShowCommand(ref="ocr-prod", target="eu", public=True)


def test_notification_verbs_are_recognised() -> None:
    command = parse_command("watch failed,concerning name:ocr-*")
    assert isinstance(command, NotificationCommand) and command.args == ["failed,concerning", "name:ocr-*"]


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [
        ("faild", "failed"),
        ("failed,concernin", "concerning"),
        ("status:runing", "running"),
        ("type:realtime", "real-time"),
        ("nmae:ocr", "name:"),
        ("sort:chaged", "changed"),
        ("sumary", "summary"),
    ],
)
def test_typos_get_the_nearest_valid_word(text: str, suggestion: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_command(text)
    assert caught.value.suggestion == suggestion
    assert suggestion.rstrip(":") in caught.value.user_text()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("limit:0", "between 1 and 1000"),
        ("limit:5000", "between 1 and 1000"),
        ("limit:ten", "whole number"),
        ("show", "needs a service id or name"),
        ('name:"ocr', "quote is not closed"),
        ("name:", "has no value"),
        ("order:up", "order:asc"),
        ("ocr prod", "Two names"),
        ("type:batch type:edge", "given twice"),
    ],
)
def test_bad_input_names_the_problem_and_the_fix(text: str, fragment: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_command(text)
    assert fragment in caught.value.user_text()
