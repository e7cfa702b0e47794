"""Listings against servers that page otherwise than our own emulator's defaults: a cap on `limit`, v2's
"offset must be a multiple of limit", a server that stops paging, and 200 answers that are not a listing.

Each case switches on the emulator quirk or fault that plays the server, and checks what a user sees: the true
total, or an answer that says it is incomplete (exit 1), never a silently short fleet; for the watcher a failed
poll, never a deletion.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import Client
from services_bot.core.client import ListParams
from services_bot.core.errors import ApiError, AuthenticationError, IncompleteListingError, MalformedResponseError
from services_bot.core.query import ServiceQuery
from services_bot.core.store import Store
from services_bot.core.watcher import Watcher
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient

from tests.conftest import Control, queries_for, v1_client
from tests.test_cli import assert_no_traceback, env_for, run
from tests.test_mcp_tools import server_for
from tests.test_slack_app import ask

FAILED = 1200


def failed_fleet(ctl: Control, count: int = FAILED) -> set[str]:
    """A flat fleet of ``count`` failed services, so `ask failed` must report exactly ``count``."""
    ctl.reset(services=0)
    return set(ctl.post("/services", {"count": count, "status": "failed"})["service_ids"])


def list_queries(ctl: Control) -> list[str]:
    return [entry["query"] for entry in ctl.requests()["log"] if entry["path"].endswith("/services")]


@pytest.mark.parametrize(
    "quirks",
    [
        {"offset_mode": "page", "max_limit": 500},
        {"offset_mode": "record", "max_limit": 500},
        {"offset_mode": "record", "max_limit": 500, "offset_multiple_of_limit": True},
    ],
    ids=["page", "record", "record-multiple-of-limit"],
)
def test_ask_reports_the_true_total_when_the_server_caps_the_page_length(
    flat_server: EmulatorServer, flat_control: Control, quirks: dict[str, object]
) -> None:
    """1,200 failed services, a server serving at most 500 a page: the answer counts 1,200, not 500."""
    failed_fleet(flat_control)
    flat_control.quirks(**quirks)
    proc = run(["ask", "--json", "failed", "limit:1000"], env_for(flat_server))
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["total"] == FAILED and answer["complete"] is True
    assert len({s["service_id"] for s in answer["services"]}) == 1000
    assert "warnings" not in answer or not answer["warnings"]


async def test_a_capped_listing_is_complete_and_the_cap_is_remembered(
    flat_server: EmulatorServer, flat_control: Control
) -> None:
    expected = failed_fleet(flat_control, 2_345)
    flat_control.quirks(offset_mode="record", max_limit=500, offset_multiple_of_limit=True)
    async with queries_for(flat_server) as queries:
        client = v1_client(queries)
        first = await client.list_all(ListParams())
        assert {s.service_id for s in first} == expected and len(first) == len(expected)
        assert client.page_limit == 500 and client.offset_mode == "record"
        flat_control.clear_requests()
        again = await client.list_all(ListParams())
    assert {s.service_id for s in again} == expected
    sent = list_queries(flat_control)
    assert len(sent) == 5, "no second probe: the offset reading is remembered"
    assert "limit=1000" in sent[0] and all("limit=500" in q for q in sent[1:]), "pages of the served length"


@pytest.mark.parametrize("mode", ["page", "record"])
async def test_the_offset_probe_is_valid_where_offset_must_be_a_multiple_of_limit(
    flat_server: EmulatorServer, flat_control: Control, mode: str
) -> None:
    """Today's `offset=1` probe gets HTTP 400 from such a server and fails the whole listing."""
    expected = failed_fleet(flat_control, 2_500)
    flat_control.quirks(offset_mode=mode, offset_multiple_of_limit=mode == "record")
    flat_control.clear_requests()
    async with queries_for(flat_server) as queries:
        listed = await v1_client(queries).list_all(ListParams())
        assert v1_client(queries).offset_mode == mode
    assert {s.service_id for s in listed} == expected
    statuses = {entry["status"] for entry in flat_control.requests()["log"]}
    assert statuses == {200}, "no request of the listing was refused"


async def test_a_refused_probe_is_information_not_a_failed_listing(
    flat_server: EmulatorServer, flat_control: Control
) -> None:
    """A page-counting server that refuses an offset past its last page answers the half-page probe 400; the
    listing still completes, through the other probe."""
    expected = failed_fleet(flat_control, 2_500)
    flat_control.quirks(offset_mode="page", offset_past_end_400=True)
    flat_control.clear_requests()
    async with queries_for(flat_server) as queries:
        listed = await v1_client(queries).list_all(ListParams())
        assert v1_client(queries).offset_mode == "page"
    assert {s.service_id for s in listed} == expected
    assert [entry["status"] for entry in flat_control.requests()["log"]].count(400) == 1


async def test_a_listing_that_stops_short_of_total_count_is_an_incomplete_answer(
    flat_server: EmulatorServer, flat_control: Control
) -> None:
    failed_fleet(flat_control)
    flat_control.quirks(offset_mode="record", result_window=500)
    async with queries_for(flat_server) as queries:
        with pytest.raises(IncompleteListingError) as caught:
            await v1_client(queries).list_all(ListParams())
        assert (caught.value.served, caught.value.total) == (500, FAILED)
        assert len(caught.value.services) == 500
        assert "ModelArts returned 500 of 1,200 services and stopped paging" in caught.value.message
        result = await queries.list(ServiceQuery.build(statuses=["failed"]))
        summary = await queries.summary()
    assert result.complete is False and result.total == 500
    assert any("500 of 1,200" in w for w in result.warnings)
    assert summary.complete is False and any("500 of 1,200" in w for w in summary.warnings)


def test_ask_exits_1_and_says_so_when_the_listing_is_incomplete(
    flat_server: EmulatorServer, flat_control: Control
) -> None:
    failed_fleet(flat_control)
    flat_control.quirks(offset_mode="record", result_window=500)
    as_json = run(["ask", "--json", "failed"], env_for(flat_server))
    text = run(["ask", "summary"], env_for(flat_server))
    for proc in (as_json, text):
        assert_no_traceback(proc)
        assert proc.returncode == 1, proc.stdout
        assert "incomplete" in proc.stderr
    answer = json.loads(as_json.stdout)
    assert answer["complete"] is False and any("500 of 1,200" in w for w in answer["warnings"])
    head = text.stdout.splitlines()[:2]
    assert head[1].startswith("INCOMPLETE: ModelArts returned 500 of 1,200 services"), head
    assert "Nothing is failed" not in text.stdout


BAD_BODIES = ["empty_object", "null_services", "error_envelope", "legacy_failure", "v2_shape", "half_page"]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_a_200_that_is_not_a_listing_is_an_error_not_an_empty_fleet(
    flat_server: EmulatorServer, flat_control: Control, body: str
) -> None:
    failed_fleet(flat_control, 50)
    flat_control.faults(listing_body=body, listing_body_count=100)
    proc = run(["ask", "failed"], env_for(flat_server, SERVICES_BOT_MAX_RETRIES="1"))
    flat_control.post("/faults", {"listing_body_count": 0})
    assert_no_traceback(proc)
    assert proc.returncode == 1, proc.stdout
    assert "0 service" not in proc.stdout and "nothing" not in proc.stdout.lower()
    assert "\nerror: ModelArts" in "\n" + proc.stderr


@pytest.mark.parametrize("body", BAD_BODIES)
async def test_one_bad_200_is_retried_and_the_answer_is_whole(
    flat_server: EmulatorServer, flat_control: Control, body: str
) -> None:
    expected = failed_fleet(flat_control, 50)
    flat_control.faults(listing_body=body, listing_body_count=1)
    async with queries_for(flat_server) as queries:
        listed = await v1_client(queries).list_all(ListParams())
    assert {s.service_id for s in listed} == expected


async def test_the_v2_shape_and_error_envelope_are_named_in_the_error(
    flat_server: EmulatorServer, flat_control: Control
) -> None:
    failed_fleet(flat_control, 5)
    async with queries_for(flat_server, services_bot_max_retries=0) as queries:
        flat_control.faults(listing_body="v2_shape", listing_body_count=1)
        with pytest.raises(MalformedResponseError) as v2:
            await v1_client(queries).list_all(ListParams())
        flat_control.faults(listing_body="error_envelope", listing_body_count=1)
        with pytest.raises(ApiError) as envelope:
            await v1_client(queries).list_all(ListParams())
    assert "v2-style listing" in v2.value.message and "MODELARTS_ENDPOINT" in v2.value.hint
    assert envelope.value.error_code == "ModelArts.0010" and "Internal error." in envelope.value.message


@pytest.mark.parametrize(
    ("fault", "quirks"),
    [
        ({"listing_body": "empty_object", "listing_body_count": 1000}, {}),
        ({"listing_body": "error_envelope", "listing_body_count": 1000}, {}),
        ({"listing_body": "half_page", "listing_body_count": 1000}, {}),
        ({}, {"offset_mode": "record", "result_window": 100}),
    ],
    ids=["empty-object", "error-envelope", "half-page", "stops-paging"],
)
async def test_the_watcher_never_records_deletions_from_a_listing_that_is_not_whole(
    flat_server: EmulatorServer, flat_control: Control, tmp_path: Path, fault: dict, quirks: dict
) -> None:
    """Today a `{}` answer records one false deletion per service, then one false arrival per service."""
    failed_fleet(flat_control, 300)
    async with (
        queries_for(flat_server, services_bot_max_retries=0, services_bot_page_size=200) as queries,
        Store(tmp_path / "w.db") as store,
    ):
        await store.ensure_default_subscription("C-alerts", {"failed", "concerning", "running"})
        watcher = Watcher(queries.clients, store, resync_polls=1)
        baseline = await watcher.poll_once()
        assert baseline.ok and baseline.targets[0].rows == 300
        if fault:
            flat_control.faults(**fault)
        if quirks:
            flat_control.quirks(**quirks)
        broken = await watcher.poll_once()
        flat_control.post("/faults", {"listing_body_count": 0})
        flat_control.post("/quirks", {"result_window": None})
        healed = await watcher.poll_once()
        assert not broken.ok and broken.transitions == []
        assert broken.targets[0].error and "ModelArts" in broken.targets[0].error
        assert healed.ok and healed.transitions == []
        assert await store.deliveries() == []
        assert len(await store.known_services("default")) == 300


async def test_errors_read_the_body_request_id_and_error_message_spelling(
    emulator_server: EmulatorServer, control: Control
) -> None:
    control.quirks(request_id_in_body=True, error_message_key=True)
    async with queries_for(emulator_server) as queries:
        with pytest.raises(ApiError) as caught:
            await v1_client(queries).get_service("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 404 and caught.value.request_id and len(caught.value.request_id) == 32
    assert caught.value.error_msg and "does not exist" in caught.value.error_msg
    assert caught.value.error_code == "ModelArts.3502"


@pytest.mark.parametrize(
    ("status", "code", "expect"),
    [
        (403, "ModelArts.0206", "HUAWEICLOUD_SDK_AK"),
        (401, "ModelArts.0204", "MODELARTS_AUTH_TOKEN"),
        (401, "ModelArts.0202", "expired"),
        (403, "ModelArts.0210", "MODELARTS_PROJECT_ID"),
    ],
)
async def test_hints_follow_the_error_code_not_only_the_http_status(
    emulator_server: EmulatorServer, control: Control, status: int, code: str, expect: str
) -> None:
    """ModelArts.0206 "Invalid AK/SK" is a 403 about credentials, not about permissions."""
    control.faults(error_status=status, error_code=code, error_count=1)
    async with queries_for(emulator_server) as queries:
        with pytest.raises(ApiError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert caught.value.status == status and caught.value.error_code == code
    assert expect in caught.value.user_text()
    if code == "ModelArts.0206":
        assert isinstance(caught.value, AuthenticationError)
        assert "permission" not in caught.value.hint


async def test_slack_and_mcp_answers_say_first_that_they_are_incomplete(
    workspace: WorkspaceClient, control: Control, emulator_server: EmulatorServer
) -> None:
    control.quirks(result_window=3)
    reply = await ask(workspace, "summary")
    assert "(incomplete)" in reply["text"]
    first_section = next(b for b in reply["blocks"] if b["type"] == "section")
    assert first_section["text"]["text"].startswith(":warning: *Incomplete answer.* ModelArts returned 3 of ")
    async with Client(server_for(emulator_server)) as client:
        result = await client.call_tool("list_services", {"status": ["running"]})
        summary = await client.call_tool("summarize_services", {})
    for answer in (result, summary):
        assert not answer.is_error and answer.structured_content is not None
        assert answer.structured_content["complete"] is False
        text = answer.content[0].text  # type: ignore[union-attr]
        assert "INCOMPLETE: ModelArts returned" in text.splitlines()[1]


async def test_a_count_that_is_the_page_size_is_not_taken_for_a_truncated_page(
    flat_server: EmulatorServer, flat_control: Control
) -> None:
    """`count` may mean the page size (v2's `size` is ambiguous that way): the short last page under a
    `count` equal to the limit asked is read, and the listing is whole."""
    expected = failed_fleet(flat_control, 2_500)
    flat_control.quirks(count_is_page_size=True)
    async with queries_for(flat_server, services_bot_max_retries=0) as queries:
        listed = await v1_client(queries).list_all(ListParams())
    assert {s.service_id for s in listed} == expected
