"""Why it failed, what changed, how loaded it is: events, update logs and load, end to end over loopback.

The emulator derives each service's events, monitor and update logs from its state (emulator/events.py);
the client reads them through the generation the service came from, and the insights layer merges them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from services_bot.core.errors import QueryError
from services_bot.core.insights import ServiceInsights, parse_events_args
from services_bot.emulator import EmulatorServer, EmulatorSettings

from tests.conftest import Control, queries_for


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
