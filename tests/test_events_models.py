"""The documented (and schema-built) events, monitor and update-log payloads parse into what a user is shown."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from services_bot.bot.views_events import load_view
from services_bot.core.insights import LoadAnswer
from services_bot.core.models import Service
from services_bot.core.models_events import (
    MAX_EVENT_TEXT,
    V1EventList,
    V1MonitorAnswer,
    V1UpdateLogs,
    V2DeploymentList,
    V2EventPage,
    V2InstancePage,
    update_logs,
    v1_events,
    v1_load,
    v2_events,
    v2_load,
)

from services_bot.text import render_load

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # copies of the spec's examples (README.md there)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_documented_v1_events_are_nine_normal_deployment_steps() -> None:
    answer = V1EventList.model_validate_json(fixture("v1-service-events.json"))
    events = v1_events(answer)
    assert answer.total_count == 9 and len(events) == 9
    assert all(e.kind == "normal" and not e.abnormal for e in events)
    assert events[0].text == "start to deploy service"
    assert events[0].at == datetime(2019, 7, 8, 14, 47, 31, 764000, tzinfo=UTC)


def test_abnormal_v1_events_are_marked_and_keep_their_cause() -> None:
    events = v1_events(V1EventList.model_validate_json(fixture("v1-service-events-abnormal.json")))
    abnormal = [e for e in events if e.abnormal]
    assert len(abnormal) == 2 and abnormal[0].kind == "abnormal"
    assert "health check did not pass" in abnormal[0].text


def test_documented_monitor_reads_usage_per_model() -> None:
    load = v1_load(V1MonitorAnswer.model_validate_json(fixture("v1-service-monitor-documented.json")))
    model = load.models[0]
    assert model.name == "minst 1.0.0"
    assert model.cpu_cores == (2.4, 4.0) and model.memory_mb == (2011.0, 8192.0) and model.gpus == (0.6, 1.0)
    assert model.calls == 50 and model.failed_calls == 1
    assert load.running is None and load.wanted is None and not load.short  # M3: no instance counts documented


def test_2024_monitor_with_figures_as_strings_reads_the_same_numbers() -> None:
    load = v1_load(V1MonitorAnswer.model_validate_json(fixture("v1-service-monitor-2024-strings.json")))
    model = load.models[0]
    assert model.cpu_cores == (2.4, 4.0) and model.memory_mb == (2011.0, 8192.0) and model.gpus == (0.6, 1.0)


def test_full_monitor_says_instances_are_down_and_requests_per_minute() -> None:
    load = v1_load(V1MonitorAnswer.model_validate_json(fixture("v1-service-monitor-full.json")))
    assert (load.running, load.wanted, load.requests_per_minute) == (1, 2, 37)
    assert load.short
    assert load.models[0].running == 1 and load.models[0].wanted == 2
    assert load.models[0].npus is None  # a total of 0 NPUs is "none", not "0 of 0 in use"


def test_documented_update_log_is_a_success_with_its_model() -> None:
    logs = update_logs(V1UpdateLogs.model_validate_json(fixture("v1-service-update-logs.json")))
    assert len(logs) == 1 and logs[0].result == "success"
    assert logs[0].models == ["minst 0.0.1"] and logs[0].instances == 1
    assert logs[0].at == datetime(2019, 11, 26, 12, 10, 28, 888000, tzinfo=UTC)


def test_2024_update_log_still_running_with_unknown_scaling_field() -> None:
    logs = update_logs(V1UpdateLogs.model_validate_json(fixture("v1-service-update-logs-2024-running.json")))
    assert logs[0].result == "running" and logs[0].models == ["model-demo 0.0.1"]


def test_v2_events_keep_repeat_counts_and_first_and_last_times() -> None:
    page = V2EventPage.model_validate_json(fixture("v2-service-events.json"))
    events = v2_events(page)
    assert page.total == 5 and len(events) == 5
    warning = events[1]
    assert warning.kind == "warning" and warning.abnormal and warning.count == 6
    assert warning.first_at == datetime(2026, 2, 26, 8, 4, tzinfo=UTC)
    assert warning.at == datetime(2026, 2, 26, 8, 13, tzinfo=UTC)
    assert events[0].kind == "abnormal" and "did not become ready" in events[0].text


def test_v2_load_counts_running_pods_against_all() -> None:
    load = v2_load(
        V2DeploymentList.model_validate_json(fixture("v2-deployments.json")),
        V2InstancePage.model_validate_json(fixture("v2-deployment-instances.json")),
    )
    assert (load.running, load.wanted) == (0, 1) and load.short
    assert load.models[0].name == "bge-embed-default 1.0.0" and load.models[0].status == "failed"
    assert (load.models[0].running, load.models[0].wanted) == (0, 1)


def test_absent_fields_and_oversized_text_are_survived() -> None:
    assert v1_events(V1EventList.model_validate({})) == []
    assert v1_load(V1MonitorAnswer.model_validate({"monitors": None})).models == []
    long = {"events": [{"event_type": "ABNORMAL", "event_info": "x" * 10_000, "occur_time": "1772093460000"}]}
    event = v1_events(V1EventList.model_validate(long))[0]
    assert event.abnormal and len(event.text) == MAX_EVENT_TEXT and event.at is not None


def test_the_load_answer_shows_each_reported_resource_in_slack_and_the_terminal() -> None:
    """The documented monitor as `/services load` and `services-bot ask load` show it: CPU, memory and GPU as
    used/total with their units, and no NPU line for a model that has none."""
    load = v1_load(V1MonitorAnswer.model_validate_json(fixture("v1-service-monitor-documented.json")))
    service = Service(service_id="svc-1", service_name="mnist", status="running")
    answer = LoadAnswer(service_id="svc-1", service_name="mnist", load=load)
    slack = " ".join(b["text"]["text"] for b in load_view(service, answer) if b.get("type") == "section")
    terminal = render_load(service, answer)
    assert "CPU 2.4/4 cores" in slack and "memory 2011/8192 MB" in slack and "GPU 0.6/1 ·" in slack, slack
    assert "CPU 2.4/4.0 cores" in terminal and "memory 2011.0/8192.0 MB" in terminal and "GPU 0.6/1.0" in terminal
    assert "NPU" not in slack and "NPU" not in terminal
