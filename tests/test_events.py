"""Why it failed, what changed, how loaded it is: events, update logs and load, end to end over loopback.

The emulator derives each service's events, monitor and update logs from its state (emulator/events.py);
the client reads them through the generation the service came from, and the insights layer merges them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from services_bot.core.errors import QueryError
from services_bot.core.insights import ServiceInsights, parse_events_args
from services_bot.core.query import ServiceQuery
from services_bot.emulator import EmulatorServer, EmulatorSettings

from tests.conftest import Control, queries_for
from tests.test_cli import env_for, run


@pytest.fixture(scope="module")
def both_server() -> Iterator[EmulatorServer]:
    settings = EmulatorSettings(port=0, services=10, workspaces=0, seed=31, churn=0, generations="mixed")
    with EmulatorServer(settings) as server:
        yield server


@pytest.fixture
def both(both_server: EmulatorServer) -> Iterator[Control]:
    ctl = Control(both_server.url)
    ctl.reset(services=10, seed=31, generations="mixed")
    yield ctl
    ctl.http.close()


def new_id(added: dict[str, Any]) -> str:
    """The id in the control API's answer: ``service_id`` (v1 details) or ``id`` (v2 details)."""
    return str(added.get("service_id") or added["id"])


def raw(server: EmulatorServer, path: str, **params: Any) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers={"X-Auth-Token": server.settings.token}, timeout=10)


@pytest.mark.parametrize("generation", ["v1", "v2"])
async def test_a_failed_service_has_abnormal_events_naming_its_cause(
    both_server: EmulatorServer, both: Control, generation: str
) -> None:
    added = both.add(service_name="ocr-fail", generation=generation)
    both.set_status(new_id(added), "failed", "OOMKilled: memory limit 4096 MB exceeded")
    async with queries_for(both_server, modelarts_api_generation="both") as queries:
        service = await queries.get("ocr-fail")
        timeline = await ServiceInsights(queries).timeline(service, kind="abnormal")
    assert timeline.notes == []
    assert timeline.abnormal and "OOMKilled: memory limit 4096 MB exceeded" in timeline.abnormal[0].text
    times = [e.at for e in timeline.entries]
    assert times == sorted(times, reverse=True)  # newest first
    assert all(e.abnormal for e in timeline.entries)
    if generation == "v1":
        assert timeline.last_update is not None and timeline.last_update.result == "fail"
    else:
        assert any(e.kind == "warning" and e.count > 1 for e in timeline.entries)  # v2 aggregates repeats


async def test_the_whole_timeline_merges_deployment_steps_and_updates(
    both_server: EmulatorServer, both: Control
) -> None:
    added = both.add(service_name="ocr-ok", generation="v1")
    async with queries_for(both_server, modelarts_api_generation="both") as queries:
        service = await queries.get(new_id(added))
        timeline = await ServiceInsights(queries).timeline(service)
    texts = [e.text for e in timeline.entries]
    assert "start to deploy service" in texts and any(t.startswith("update success") for t in texts)
    assert any(e.source == "update" for e in timeline.entries)
    assert not timeline.abnormal


@pytest.mark.parametrize("generation", ["v1", "v2"])
async def test_a_concerning_service_runs_fewer_instances_than_wanted(
    both_server: EmulatorServer, both: Control, generation: str
) -> None:
    added = both.add(service_name="asr-wobbly", generation=generation)
    both.set_status(new_id(added), "concerning")
    async with queries_for(both_server, modelarts_api_generation="both") as queries:
        service = await queries.get("asr-wobbly")
        answer = await ServiceInsights(queries).load(service)
    assert answer.notes == [] and answer.load is not None
    assert answer.load.short, (answer.load.running, answer.load.wanted)
    assert answer.load.models


async def test_a_failing_events_call_degrades_to_a_note(both_server: EmulatorServer, both: Control) -> None:
    added = both.add(service_name="ocr-dark", generation="v1")
    both.set_status(new_id(added), "failed", "image pull failed")
    both.faults(error_status=500, error_count=100, paths=["/events"])
    try:
        async with queries_for(both_server, modelarts_api_generation="both", services_bot_max_retries=0) as queries:
            service = await queries.get("ocr-dark")
            timeline = await ServiceInsights(queries).timeline(service)
    finally:
        both.post("/faults", {"error_count": 0, "paths": None})
    assert service.error_msg == "image pull failed"  # the answer itself still stands
    assert timeline.notes and timeline.notes[0].startswith("Events could not be read")
    assert timeline.last_update is not None  # the logs still came


def test_emulator_events_follow_the_documented_query_rules(both_server: EmulatorServer, both: Control) -> None:
    added = both.add(service_name="rules", generation="both")
    both.set_status(new_id(added), "failed", "x")
    project = both_server.settings.project_id
    v1 = raw(both_server, f"/v1/{project}/services/{new_id(added)}/events", event_type="abnormal", order="asc")
    body = v1.json()
    assert v1.status_code == 200 and body["total_count"] == len(body["events"]) >= 1
    assert {e["event_type"] for e in body["events"]} == {"abnormal"}
    bad = raw(both_server, f"/v1/{project}/services/{new_id(added)}/events", event_type="ABNORMAL")
    assert bad.status_code == 400 and bad.json()["error_code"] == "ModelArts.0101"
    v2 = raw(both_server, f"/v2/{project}/services/{new_id(added)}/events", limit=3, offset=2)
    assert v2.status_code == 400 and "multiple of limit" in v2.json()["error_msg"]
    missing = raw(both_server, f"/v1/{project}/services/no-such-service/monitor")
    assert missing.status_code == 404 and missing.json()["error_code"] == "ModelArts.3502"


def test_events_arguments_are_read_and_bad_ones_named() -> None:
    service, since, kind = parse_events_args(["ocr-prod", "since:2h", "type:abnormal"])
    assert service == "ocr-prod" and since is not None and since.total_seconds() == 7200 and kind == "abnormal"
    with pytest.raises(QueryError, match="not a duration"):
        parse_events_args(["ocr-prod", "since:soon"])
    with pytest.raises(QueryError, match="Unknown event type"):
        parse_events_args(["ocr-prod", "type:bad"])
    with pytest.raises(QueryError, match="No service"):
        parse_events_args(["since:2h"])


# -- services-bot ask ---------------------------------------------------------------------------------------


def test_ask_show_a_failed_service_prints_its_abnormal_events_and_last_update(
    emulator_server: EmulatorServer, control: Control
) -> None:
    added = control.add(service_name="cli-why-failed")
    control.set_status(new_id(added), "failed", "insufficient resources in pool")
    proc = run(["ask", "show", "cli-why-failed"], env_for(emulator_server))
    assert proc.returncode == 0, proc.stderr
    assert "latest abnormal events:" in proc.stdout
    assert "model start failed: insufficient resources in pool" in proc.stdout
    assert "last update:" in proc.stdout and "fail" in proc.stdout
    shown = json.loads(run(["ask", "--json", "show", "cli-why-failed"], env_for(emulator_server)).stdout)
    assert shown["why"]["entries"] and all(e["kind"] != "normal" for e in shown["why"]["entries"])
    assert len(shown["why"]["entries"]) <= 5


def test_ask_show_a_running_service_adds_no_events(emulator_server: EmulatorServer, control: Control) -> None:
    control.add(service_name="cli-why-fine")
    proc = run(["ask", "show", "cli-why-fine"], env_for(emulator_server))
    assert proc.returncode == 0 and "latest abnormal events" not in proc.stdout


def test_ask_events_and_load(emulator_server: EmulatorServer, control: Control) -> None:
    added = control.add(service_name="cli-events")
    control.set_status(new_id(added), "concerning")
    events = run(["ask", "events", "cli-events", "since:2d"], env_for(emulator_server))
    assert events.returncode == 0, events.stderr
    assert "start to deploy service" in events.stdout and "1 instance not ready" in events.stdout
    abnormal = run(["ask", "events", "cli-events", "type:abnormal"], env_for(emulator_server))
    assert "1 instance not ready" in abnormal.stdout and "start to deploy service" not in abnormal.stdout
    load = run(["ask", "load", "cli-events"], env_for(emulator_server))
    assert load.returncode == 0 and "(instances down)" in load.stdout


def test_ask_events_of_an_unknown_service_suggests_names(emulator_server: EmulatorServer, control: Control) -> None:
    control.add(service_name="cli-events-known")
    proc = run(["ask", "events", "cli-events-knwn"], env_for(emulator_server))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr + proc.stdout
    assert "cli-events-known" in proc.stdout + proc.stderr
    bad = run(["ask", "events", "cli-events-known", "since:forever"], env_for(emulator_server))
    assert bad.returncode != 0 and "not a duration" in bad.stdout + bad.stderr


# -- pool:<id> -------------------------------------------------------------------------------------------


async def test_pool_filter_is_sent_to_v2_and_says_v1_is_left_out(both_server: EmulatorServer, both: Control) -> None:
    project = both_server.settings.project_id
    rows = raw(both_server, f"/v2/{project}/services", limit=500).json()["data"]
    first = raw(both_server, f"/v2/{project}/services/{rows[0]['id']}").json()
    pool = first["version"]["instance_groups"][0]["pool_id"]
    oracle = raw(both_server, f"/v2/{project}/services", pool_id=pool, limit=500).json()["data"]
    both.clear_requests()
    async with queries_for(both_server, modelarts_api_generation="both") as queries:
        result = await queries.list(ServiceQuery.build(pool=pool, limit=100))
    assert {s.service_id for s in result.services} == {r["id"] for r in oracle} and oracle
    assert all(s.generation == "v2" for s in result.services)
    assert any("v1 services are left out" in w for w in result.warnings)
    listed = [q for q in both.requests()["log"] if q["path"].endswith("/services")]
    assert listed and all("pool_id=" in q["query"] and q["path"].startswith("/v2/") for q in listed)
