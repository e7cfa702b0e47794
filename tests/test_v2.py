"""Both API generations: v2 services read, mapped and merged with v1 ones, as a user sees them.

The example payloads (tests/fixtures/v2-*.json) parse into the same service the surfaces show; the status
mapping is the README's table, row by row; over loopback, a v2-only, a v1-only and a mixed project answer
``ask``, ``summary``, ``show`` and MCP; a generation whose list is not published is skipped after one probe;
a v2 answer that breaks its own paging rules is an incomplete listing; the watcher alerts a v2 flip.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from services_bot.core.client import ListParams
from services_bot.core.errors import ApiNotFoundError, IncompleteListingError
from services_bot.core.models import FAILED_STATUSES, KNOWN_INFER_TYPES, KNOWN_STATUSES, UNHEALTHY_STATUSES
from services_bot.core.models_v2 import (
    V2_STATUSES,
    V2ServiceDetail,
    V2ServiceRow,
    detail_to_service,
    row_to_service,
)
from services_bot.core.notifications import Subscription, Transition
from services_bot.core.query import ServiceQuery
from services_bot.core.store import Store
from services_bot.core.watcher import Watcher
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.tools.server import create_mcp_server
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from services_bot.wiring import open_queries
from tests.conftest import Control, make_settings, queries_for, slack_settings
from tests.test_cli import assert_no_traceback, env_for, run
from tests.test_slack_app import GENERAL, answers, ask, button, text_of
from tests.test_slack_views import assert_valid

FIXTURES = Path(__file__).parent / "fixtures"
README = Path(__file__).parent.parent / "README.md"
CONTEXT = {"target": "default", "detail": "list"}


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


# -- the example payloads ------------------------------------------------------------------------------


def test_the_v2_list_example_becomes_the_services_a_user_sees() -> None:
    page = fixture("v2-list-services.json")
    services = [row_to_service(V2ServiceRow.model_validate(row), CONTEXT) for row in page["data"]]
    assert [(s.service_name, s.status, s.infer_type) for s in services] == [
        ("qwen-chat-prod", "running", "real-time"),
        ("bge-embed", "failed", "real-time"),
        ("sd-render-async", "concerning", "async-real-time"),
        ("rerank-trial", "stopped", "real-time"),
    ]
    first = services[0]
    assert first.generation == "v2" and first.service_id == "5f3c1a2e-8b4d-4c7e-9a61-2d0e7b9c4f18"
    assert first.workspace_id == "0" and first.owner == "ops-admin"
    assert int(first.publish_at.timestamp() * 1000) == 1769500800000  # type: ignore[union-attr]
    assert int(first.transition_at.timestamp() * 1000) == 1771920000000  # type: ignore[union-attr]
    assert first.extra_fields()["tags"] == {"team": "search", "env": "prod"}
    assert first.extra_fields()["task_type"] == "TEXT_GENERATION"
    stopped = services[3]
    assert stopped.due_time is None, "a processed auto-stop is not a pending one"
    assert stopped.schedule and stopped.schedule[0].type == "STOP"


def test_the_failed_v2_details_carry_the_failure_reason_and_the_deployment() -> None:
    detail = detail_to_service(V2ServiceDetail.model_validate(fixture("v2-show-service-failed.json")), CONTEXT)
    assert detail.status == "failed" and detail.generation == "v2"
    assert detail.error_msg and detail.error_msg.startswith("Deployment bge-embed-default did not become ready")
    (deployment,) = detail.deployments or []
    assert (deployment.name, deployment.status, deployment.count, deployment.running_count) == (
        "bge-embed-default",
        "failed",
        1,
        0,
    )
    assert deployment.flavor == "modelarts.vm.gpu.t4u8" and deployment.pool == "pool-6f2d8a1c"
    assert int(detail.publish_at.timestamp() * 1000) == 1772092800000, "numeric-string times are read"  # type: ignore[union-attr]
    assert detail.access_address is None, "no URL while it does not serve"


def test_the_concerning_v2_details_show_the_predict_url_and_both_deployments() -> None:
    detail = detail_to_service(V2ServiceDetail.model_validate(fixture("v2-show-service-concerning.json")), CONTEXT)
    assert detail.status == "concerning" and detail.infer_type == "async-real-time"
    assert detail.access_address and detail.access_address.startswith("https://")
    deployments = detail.deployments or []
    assert len(deployments) == 2
    assert any(d.running_count == 1 and d.count == 2 for d in deployments)
    assert detail.error_msg is None, "a logging problem's failure_reason is not the service's"


def test_the_stop_answer_is_a_stopping_service() -> None:
    detail = detail_to_service(V2ServiceDetail.model_validate(fixture("v2-stop-service.json")), CONTEXT)
    assert detail.status == "stopping" and detail.generation == "v2"


def test_an_unknown_v2_status_or_type_is_kept_verbatim() -> None:
    row = {**fixture("v2-list-services.json")["data"][0], "status": "HIBERNATING", "type": "BATCH_REAL_TIME"}
    service = row_to_service(V2ServiceRow.model_validate(row), CONTEXT)
    assert (service.status, service.infer_type) == ("HIBERNATING", "BATCH_REAL_TIME")
    assert not service.is_unhealthy


# -- the status mapping, row by row --------------------------------------------------------------------


def mapping_rows() -> list[list[str]]:
    """The README's "Status mapping" table: v2 status, product status, unhealthy, `failed` filter, alerts."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Status mapping", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows]


@pytest.mark.parametrize("row", mapping_rows(), ids=lambda row: row[0])
def test_each_row_of_the_documented_status_mapping_holds(row: list[str]) -> None:
    wire, product, unhealthy, failed, alerted = row[:5]
    assert V2_STATUSES[wire] == product
    assert product in KNOWN_STATUSES, "every mapped status can be asked for by name"
    assert (product in UNHEALTHY_STATUSES) == (unhealthy == "yes")
    assert (product in FAILED_STATUSES) == (failed == "yes")
    assert (product in UNHEALTHY_STATUSES) == (alerted == "yes"), "default alerts are the unhealthy statuses"


def test_the_documented_table_covers_every_v2_status() -> None:
    assert {row[0] for row in mapping_rows()} == set(V2_STATUSES)
    assert "async-real-time" in KNOWN_INFER_TYPES


# -- over loopback: one generation, the other, both ------------------------------------------------------


@pytest.fixture(scope="module")
def v2_server() -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(port=0, services=40, workspaces=0, seed=21, churn=0, generations="v2")
    with EmulatorServer(settings) as server:
        yield server


@pytest.fixture
def v2_control(v2_server: EmulatorServer) -> Iterator[Control]:
    ctl = Control(v2_server.url)
    ctl.reset(services=40, seed=21, generations="v2")
    yield ctl
    ctl.http.close()


def v1_ids(control: Control, server: EmulatorServer) -> set[str]:
    """The ids the emulator's own v1 list holds: the oracle for the v1 side."""
    return {r["service_id"] for r in control.list_raw(server.settings.project_id, server.settings.token)["services"]}


def v2_rows(server: EmulatorServer, **params: Any) -> list[dict[str, Any]]:
    """The emulator's own v2 answer in one page (at most 500 rows): the oracle."""
    response = httpx.get(
        f"{server.url}/v2/{server.settings.project_id}/services",
        params={"limit": 500, **params},
        headers={"X-Auth-Token": server.settings.token},
    )
    response.raise_for_status()
    return response.json()["data"]  # type: ignore[no-any-return]


def test_ask_failed_on_a_v2_project_lists_exactly_the_failed_and_error_services_with_their_reason(
    v2_server: EmulatorServer, v2_control: Control
) -> None:
    rows = v2_rows(v2_server, status="RUNNING")
    for row in rows[:2]:
        v2_control.set_status(row["id"], "FAILED", f"startup probe failed for {row['name']}")
    for row in rows[2:4]:
        v2_control.set_status(row["id"], "ERROR", f"node lost under {row['name']}")
    v2_control.set_status(rows[4]["id"], "UPGRADING")
    expected = {r["id"] for r in v2_rows(v2_server) if r["status"] in ("FAILED", "ERROR")}
    proc = run(["ask", "--json", "failed", "limit:1000"], env_for(v2_server))
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert {s["service_id"] for s in answer["services"]} == expected and answer["total"] == len(expected)
    by_id = {s["service_id"]: s for s in answer["services"]}
    for row in rows[:2]:
        assert by_id[row["id"]]["status"] == "failed"
        assert by_id[row["id"]]["error_msg"] == f"startup probe failed for {row['name']}"
    for row in rows[2:4]:
        assert by_id[row["id"]]["status"] == "error"
        assert by_id[row["id"]]["error_msg"] == f"node lost under {row['name']}"
    assert {s["generation"] for s in answer["services"]} == {"v2"}
    assert rows[4]["id"] not in by_id, "upgrading is neither failed nor error"


def test_show_and_summary_on_a_v2_project(v2_server: EmulatorServer, v2_control: Control) -> None:
    row = v2_rows(v2_server)[0]
    v2_control.set_status(row["id"], "ERROR", "node lost")
    for ref in (row["id"], row["name"]):
        proc = run(["ask", "--json", "show", ref], env_for(v2_server))
        assert proc.returncode == 0, proc.stderr
        shown = json.loads(proc.stdout)
        assert shown["service_id"] == row["id"] and shown["status"] == "error"
        assert shown["generation"] == "v2" and shown["error_msg"] == "node lost"
        assert shown["deployments"], "v2 details show their deployments"
    proc = run(["ask", "summary"], env_for(v2_server))
    assert proc.returncode == 0, proc.stderr
    assert "error 1" in proc.stdout and "By API:     v2 40" in proc.stdout
    assert "node lost" in proc.stdout


async def test_a_v1_only_project_is_read_whole_and_v2_costs_one_empty_page(
    emulator_server: EmulatorServer, control: Control
) -> None:
    expected = v1_ids(control, emulator_server)
    control.clear_requests()
    async with queries_for(emulator_server) as queries:
        result = await queries.list(ServiceQuery.build(limit=1000))
    assert {s.service_id for s in result.services} == expected and result.complete
    assert {s.generation for s in result.services} == {"v1"}
    assert control.requests()["by_route"].get("list_v2") == 1


@pytest.fixture(scope="module")
def mixed_server() -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(port=0, services=60, workspaces=0, seed=4, churn=0, generations="mixed")
    with EmulatorServer(settings) as server:
        yield server


@pytest.fixture
def mixed_control(mixed_server: EmulatorServer) -> Iterator[Control]:
    ctl = Control(mixed_server.url)
    ctl.reset(services=60, seed=4, generations="mixed")
    yield ctl
    ctl.http.close()


def test_summary_of_a_mixed_project_counts_each_service_once(
    mixed_server: EmulatorServer, mixed_control: Control
) -> None:
    v1 = v1_ids(mixed_control, mixed_server)
    v2 = {r["id"] for r in v2_rows(mixed_server)}
    assert v1 - v2 and v2 - v1 and v1 & v2, "the mixed fleet has v1-only, v2-only and shared services"
    proc = run(["ask", "--json", "summary"], env_for(mixed_server))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["total"] == len(v1 | v2)
    assert summary["by_generation"] == {"v1": len(v1), "v2": len(v2 - v1)}, "a shared service stays v1, once"
    listed = json.loads(run(["ask", "--json", "limit:1000"], env_for(mixed_server)).stdout)
    ids = [s["service_id"] for s in listed["services"]]
    assert len(ids) == len(set(ids)) == len(v1 | v2)


async def test_mcp_tools_say_which_generation_a_service_came_from(
    mixed_server: EmulatorServer, mixed_control: Control
) -> None:
    v1 = v1_ids(mixed_control, mixed_server)
    only_v2 = next(r for r in v2_rows(mixed_server) if r["id"] not in v1)
    settings = make_settings(mixed_server)
    async with Client(create_mcp_server(lambda: open_queries(settings))) as client:
        listed = (await client.call_tool("list_services", {"limit": 100})).structured_content
        detail = (await client.call_tool("get_service", {"service": only_v2["name"]})).structured_content
    assert listed is not None and detail is not None
    generations = {row["service_id"]: row["generation"] for row in listed["services"]}
    assert generations[only_v2["id"]] == "v2" and {"v1", "v2"} == set(generations.values())
    assert detail["service_id"] == only_v2["id"] and detail["generation"] == "v2"


# -- a generation that is not there, and v2 answers that break their own rules --------------------------


async def test_a_generation_not_published_in_the_region_is_skipped_after_one_probe(
    mixed_server: EmulatorServer, mixed_control: Control, caplog: pytest.LogCaptureFixture
) -> None:
    v1 = v1_ids(mixed_control, mixed_server)
    mixed_control.quirks(missing_generation="v2")
    mixed_control.clear_requests()
    with caplog.at_level(logging.WARNING, logger="services_bot.generations"):
        async with queries_for(mixed_server) as queries:
            for _ in range(3):
                result = await queries.list(ServiceQuery.build(limit=1000))
                assert {s.service_id for s in result.services} == v1 and result.complete
            assert (await queries.summary()).total == len(v1)
    assert mixed_control.requests()["by_route"].get("list_v2") == 1, "one probe, then remembered"
    notes = [r for r in caplog.records if "not served here" in r.getMessage()]
    assert len(notes) == 1 and getattr(notes[0], "generation", None) == "v2"


async def test_an_incomplete_v1_listing_of_a_mixed_target_still_carries_every_v2_service(
    mixed_server: EmulatorServer, mixed_control: Control
) -> None:
    """Both generations are listed at once: when v1's listing ends short, the partial answer still holds what
    v2 served (listed one after the other, v1's error ended the listing before v2 was asked)."""
    v1 = v1_ids(mixed_control, mixed_server)
    only_v2 = {r["id"] for r in v2_rows(mixed_server)} - v1
    mixed_control.quirks(result_window=10)  # v1 stops serving after 10 rows while its total counts them all
    async with queries_for(mixed_server, services_bot_page_size=10, services_bot_max_retries=0) as queries:
        result = await queries.list(ServiceQuery.build(limit=1000))
    shown = {s.service_id for s in result.services}
    assert not result.complete and result.warnings
    assert only_v2 <= shown, "the v2 services are in the partial answer"
    assert shown & v1, "and what v1 served before it stopped"


async def test_a_target_pinned_to_a_missing_generation_says_so(
    mixed_server: EmulatorServer, mixed_control: Control
) -> None:
    mixed_control.quirks(missing_generation="v2")
    proc = run(["ask", "failed"], env_for(mixed_server, MODELARTS_API_GENERATION="v2"))
    assert_no_traceback(proc)
    assert proc.returncode != 0 and "404" in proc.stderr
    async with queries_for(mixed_server, modelarts_api_generation="v2") as queries:
        with pytest.raises(ApiNotFoundError):
            await queries.clients[0].list_all(ListParams())


def test_an_unknown_api_generation_setting_is_refused_with_the_choices(v2_server: EmulatorServer) -> None:
    proc = run(["ask", "failed"], env_for(v2_server, MODELARTS_API_GENERATION="v3"))
    assert_no_traceback(proc)
    assert proc.returncode != 0 and "v1, v2 or both" in proc.stderr


@pytest.mark.parametrize("fault", ["v2_short_page", "v2_pages_overflow"])
async def test_a_v2_answer_that_breaks_its_paging_rules_is_an_incomplete_listing(
    v2_server: EmulatorServer, v2_control: Control, fault: str
) -> None:
    v2_control.faults(**{fault: True})
    async with queries_for(v2_server, services_bot_page_size=10, services_bot_max_retries=0) as queries:
        with pytest.raises(IncompleteListingError):
            await queries.clients[0].list_all(ListParams())
        result = await queries.list(ServiceQuery.build(limit=1000))
    assert not result.complete and any("paging rules" in w for w in result.warnings)
    proc = run(["ask", "--json", "limit:1000"], env_for(v2_server, SERVICES_BOT_PAGE_SIZE="10"))
    assert_no_traceback(proc)
    assert proc.returncode == 1 and "incomplete" in proc.stderr


async def test_a_v2_listing_pages_concurrently_within_its_limit(v2_control: Control, v2_server: EmulatorServer) -> None:
    v2_control.reset(services=1234, seed=3, generations="v2")
    expected = {r["id"] for r in v2_rows(v2_server)} | {r["id"] for r in v2_rows(v2_server, offset=500)}
    expected |= {r["id"] for r in v2_rows(v2_server, offset=1000)}
    v2_control.clear_requests()
    async with queries_for(v2_server, modelarts_api_generation="v2") as queries:
        listed = await queries.clients[0].list_all(ListParams())
    assert {s.service_id for s in listed} == expected and len(listed) == 1234
    sent = [e["query"] for e in v2_control.requests()["log"] if e["path"].endswith("/services")]
    assert len(sent) == 3 and all("limit=500" in q for q in sent)


# -- the watcher -------------------------------------------------------------------------------------------

POLL = 0.3
ALERTS = "C0ALERTS"


async def test_the_watcher_alerts_a_v2_running_to_failed_flip_within_one_poll_and_a_second(
    mixed_server: EmulatorServer,
    mixed_control: Control,
    workspace_server: WorkspaceServer,
    slack: WorkspaceClient,
    tmp_path: Path,
) -> None:
    v1 = v1_ids(mixed_control, mixed_server)
    target = next(r for r in v2_rows(mixed_server, status="RUNNING") if r["id"] not in v1)
    settings = slack_settings(
        mixed_server,
        workspace_server,
        services_bot_db=tmp_path / "store.db",
        services_bot_poll_seconds=POLL,
        services_bot_alert_channel=ALERTS,
        services_bot_max_retries=0,
        services_bot_resync_polls=1000,
    )
    with BackgroundServe(settings) as bot:
        watcher = bot.runtime.watcher
        assert watcher is not None
        deadline = time.monotonic() + 15
        while watcher.polls < 3 or watcher.last_poll is None or watcher.last_poll.targets[0].mode != "incremental":
            assert time.monotonic() < deadline, "the watcher did not reach incremental polls"
            await asyncio.sleep(0.02)
        mixed_control.clear_requests()
        started = time.monotonic()
        mixed_control.set_status(target["id"], "FAILED", "CUDA out of memory <!channel>")
        found = await slack.wait_for_messages(
            lambda m: any(target["name"] in x["text"] for x in m if x["user"] == "U0BOT"), channel=ALERTS, timeout=10
        )
        took = time.monotonic() - started
    (alert,) = [m for m in found if m["user"] == "U0BOT" and target["name"] in m["text"]]
    assert took < POLL + 1.0, f"alerted after {took:.2f}s"
    text = json.dumps(alert["blocks"], ensure_ascii=False)
    assert ":red_circle: failed · *" in text and "(was running)" in text
    assert "CUDA out of memory &lt;!channel&gt;" in text
    payload = alert["metadata"]["event_payload"]
    assert payload["service_id"] == target["id"] and payload["to_status"] == "failed"
    log = mixed_control.requests()["log"]
    v2_scans = [e["query"] for e in log if e["path"].endswith("/services") and "/v2/" in e["path"]]
    assert v2_scans and all("sort_key=update_at" in q and "sort_dir=DESC" in q for q in v2_scans)


async def test_a_quiet_poll_of_a_mixed_target_costs_one_request_per_generation(
    mixed_server: EmulatorServer, mixed_control: Control, tmp_path: Path
) -> None:
    async with queries_for(mixed_server, services_bot_max_retries=0) as queries, Store(tmp_path / "w.db") as store:
        watcher = Watcher(queries.clients, store)
        baseline = await watcher.poll_once()
        v1 = v1_ids(mixed_control, mixed_server)
        v2 = {r["id"] for r in v2_rows(mixed_server)}
        assert baseline.ok and len(await store.known_services("default")) == len(v1 | v2)
        await watcher.poll_once()  # the run's first scan also checks the order once per generation
        mixed_control.clear_requests()
        quiet = await watcher.poll_once()
        assert [t.mode for t in quiet.targets] == ["incremental"] and quiet.transitions == []
        by_route = mixed_control.requests()["by_route"]
        assert (by_route.get("list"), by_route.get("list_v2"), quiet.requests) == (1, 1, 2)
        row = next(r for r in v2_rows(mixed_server, status="RUNNING") if r["id"] not in v1)
        mixed_control.set_status(row["id"], "ERROR", "node lost")
        changed = await watcher.poll_once()
    assert [t.mode for t in changed.targets] == ["incremental"]
    (transition,) = changed.transitions
    assert (transition.service_id, transition.from_status, transition.to_status) == (row["id"], "running", "error")
    assert transition.error_msg == "node lost"


async def test_slack_answers_and_the_details_button_work_on_a_v2_project(
    v2_server: EmulatorServer, v2_control: Control, workspace_server: WorkspaceServer, slack: WorkspaceClient
) -> None:
    row = v2_rows(v2_server, status="RUNNING")[0]
    v2_control.set_status(row["id"], "ERROR", "node lost <!here>")
    with BackgroundServe(slack_settings(v2_server, workspace_server), watch=False) as bot:
        await slack.set_app_url(bot.url + "/slack/events")
        listing = await ask(slack, f"failed name:{row['name']}")
        assert f"*{row['name']}*" in text_of(listing) and "node lost &lt;!here&gt;" in text_of(listing)
        assert ":x: error ·" in text_of(listing) and "<!here>" not in json.dumps(listing)
        await slack.click(listing, "service_details", button(listing, "service_details")["value"])
        found = await slack.wait_for_messages(lambda m: len(answers(m)) == 2, channel=GENERAL)
    details = answers(found)[-1]
    assert_valid(details["blocks"])
    shown = text_of(details)
    assert row["id"] in shown and "node lost &lt;!here&gt;" in shown
    assert "*API*\nv2" in shown and "*Deployment*" in shown


def test_a_watch_of_failed_stored_before_v2_also_hears_of_error() -> None:
    old_watch = Subscription(channel="C1", statuses=frozenset({"failed"}))
    error = Transition(target="t", service_id="s", kind="changed", from_status="running", to_status="error")
    upgrading = Transition(target="t", service_id="s", kind="changed", from_status="running", to_status="upgrading")
    assert old_watch.matches(error) and not old_watch.matches(upgrading)
    assert not Subscription(channel="C1", statuses=frozenset({"concerning"})).matches(error)


async def test_a_service_both_generations_report_changes_once_in_v1_words(
    mixed_server: EmulatorServer, mixed_control: Control, tmp_path: Path
) -> None:
    v1 = v1_ids(mixed_control, mixed_server)
    shared = next(r for r in v2_rows(mixed_server, status="RUNNING") if r["id"] in v1)
    async with queries_for(mixed_server, services_bot_max_retries=0) as queries, Store(tmp_path / "w.db") as store:
        watcher = Watcher(queries.clients, store, resync_polls=4)
        await watcher.poll_once()
        await watcher.poll_once()
        mixed_control.set_status(shared["id"], "ERROR", "node lost")  # v1 shows it failed, v2 ERROR
        changed = await watcher.poll_once()
        later = [await watcher.poll_once() for _ in range(3)]  # one of them a full listing (resync_polls)
    (transition,) = changed.transitions
    assert (transition.service_id, transition.to_status) == (shared["id"], "failed")
    assert [t.mode for t in changed.targets] == ["incremental"] and "full" in {p.targets[0].mode for p in later}
    assert all(p.ok and not p.transitions for p in later), "no flapping between the two generations' words"
