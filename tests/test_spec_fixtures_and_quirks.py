"""The documented example payloads parse, and every shape quirk of docs/spec/quirks.md is survived."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from services_bot.core.models import LegacyServiceList, Service, ServicePage

FIXTURES = Path(__file__).resolve().parent / "fixtures"  # copies of the spec's examples (README.md there)


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_list_example_parses_with_number_workspace_and_seconds_publish_time() -> None:
    page = ServicePage.model_validate_json(fixture("list-services-example.json"))
    assert page.total_count == 1 and page.count == 1
    service = page.services[0]
    assert service.service_name == "mnist"
    assert service.workspace_id == "0"  # Q01: number 0 becomes "0"
    assert service.publish_at == datetime(2009, 5, 24, 5, 34, 3, tzinfo=UTC)  # Q02: read as seconds
    assert any("publish_at" in note for note in service.notes)
    assert service.invocation_times == 50 and service.failed_times == 1
    assert service.description is None  # Q20: "" is "not set"


def test_details_example_parses_with_notready_config() -> None:
    service = Service.model_validate_json(fixture("show-service-example.json"))
    assert service.status == "running" and service.progress == 100  # Q16
    assert service.transition_at == datetime(2020, 4, 2, 6, 33, 51, 902000, tzinfo=UTC)
    assert service.config and service.config[0].status == "notReady"  # Q09
    assert service.config[0].specification == "custom" and service.config[0].custom_spec is None  # Q13
    assert service.additional_properties is None  # Q06: {} is "not set"
    assert service.tenant == "xxxxx"  # Q40: placeholders are data


def test_legacy_examples_parse_and_normalise() -> None:
    ok = LegacyServiceList.model_validate_json(fixture("legacy-infer-services-success.json"))
    service = ok.services[0].to_service()  # type: ignore[index]
    assert service.description == "test cusom image"  # Q43: kept as is
    assert service.invocation_times == 0  # Q03: "0" string
    assert service.publish_at == datetime(2019, 1, 19, 2, 58, 7, 137000, tzinfo=UTC)  # Q35 publish_time
    assert service.legacy_update_time is not None and service.update_time is None
    failed = LegacyServiceList.model_validate_json(fixture("legacy-infer-services-failure.json"))
    assert failed.is_success is False and failed.error_code == "res.2301" and failed.services is None  # Q34


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(5, 5), ("5", 5), (5.0, 5), ("5.0", 5), ("many", None), (None, None), (True, None)],
)
def test_counters_accept_every_documented_type(raw: object, expected: int | None) -> None:
    service = Service.model_validate({"service_id": "a", "invocation_times": raw, "failed_times": raw})
    assert service.invocation_times == expected and service.failed_times == expected


@pytest.mark.parametrize(("raw", "expected"), [(True, True), ("false", False), ("TRUE", True), (None, None)])
def test_sample_collection_flag_accepts_strings_and_booleans(raw: object, expected: bool | None) -> None:
    assert (
        Service.model_validate({"service_id": "a", "is_opened_sample_collection": raw}).is_opened_sample_collection
        is expected
    )


def test_config_as_json_string_is_decoded() -> None:
    config = [{"model_id": "m1", "model_name": "ocr", "weight": "100", "custom_spec": {"cpu": 0.5, "memory": 1024}}]
    service = Service.model_validate({"service_id": "a", "config": json.dumps(config)})
    assert service.config and service.config[0].weight == 100
    assert service.config[0].custom_spec and service.config[0].custom_spec.cpu == 0.5  # Q37 float cpu


def test_unknown_fields_and_unknown_status_are_kept() -> None:
    service = Service.model_validate(
        {"service_id": "a", "status": "upgrading", "brand_new": {"x": 1}, "config": [{"model_id": "m", "novel": 2}]}
    )
    assert service.status == "upgrading"
    assert service.extra_fields() == {"brand_new": {"x": 1}}
    assert service.config and service.config[0].model_extra == {"novel": 2}
    assert service.model_dump(mode="json")["brand_new"] == {"x": 1}


def test_times_in_ms_seconds_and_float_all_become_aware_datetimes() -> None:
    for raw in (1585809231902, 1585809231902.0, "1585809231902", 1585809231.902):
        when = Service.model_validate({"service_id": "a", "transition_at": raw}).transition_at
        assert when is not None and when.tzinfo is not None
        assert when.replace(microsecond=0) == datetime(2020, 4, 2, 6, 33, 51, tzinfo=UTC)


def test_node_times_are_naive_utc_strings() -> None:
    node = {
        "id": "n1",
        "created_at": "2024-01-02T03:04:05",
        "updated_at": "2024-01-02T03:04:05.5Z",
        "host_ips": ["10.0.0.1"],
    }
    service = Service.model_validate({"service_id": "a", "config": [{"model_id": "m", "nodes": [node]}]})
    parsed = service.config[0].nodes[0]  # type: ignore[index]
    assert parsed.created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parsed.updated_at is not None and parsed.updated_at.tzinfo is not None


@pytest.mark.parametrize("empty", [None, "", [], {}])
def test_absent_null_blank_and_empty_all_mean_not_set(empty: object) -> None:
    service = Service.model_validate(
        {"service_id": "a", "schedule": empty, "additional_properties": empty, "pool_name": empty, "description": empty}
    )
    assert service.schedule is None and service.additional_properties is None
    assert service.pool_name is None and service.description is None


def test_nested_additional_properties_are_kept_as_json() -> None:
    props = {"smn_notification": {"topic_urn": "urn:x", "events": [1, 2]}, "log_report_channels": [{"type": "LTS"}]}
    assert Service.model_validate({"service_id": "a", "additional_properties": props}).additional_properties == props


def test_list_page_without_count_is_fine_but_without_services_is_not_a_listing() -> None:
    page = ServicePage.model_validate({"total_count": 0, "services": []})
    assert page.services == [] and page.count is None
    for body in ({"total_count": 0}, {"total_count": 3, "services": None}, {}):
        with pytest.raises(ValidationError):
            ServicePage.model_validate(body)
