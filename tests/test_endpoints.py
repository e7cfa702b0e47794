"""Each endpoint and each documented query parameter, through the real client, against the emulator."""

from __future__ import annotations

import pytest
from services_bot.core.client import ListParams
from services_bot.core.errors import ApiNotFoundError, BadRequestError, QueryError
from services_bot.emulator import EmulatorServer

from tests.conftest import Control, queries_for, v1_client


def oracle(control: Control, server: EmulatorServer, **params: str) -> list[dict]:
    return control.list_raw(server.settings.project_id, server.settings.token, **params)["services"]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "running"},
        {"infer_type": "batch"},
        {"sort_by": "service_name", "order": "asc"},
        {"sort_by": "transition_at", "order": "desc"},
        {"sort_by": "publish_at", "order": "asc"},
    ],
)
async def test_list_parameters_reach_the_api(emulator_server: EmulatorServer, control: Control, params: dict) -> None:
    control.clear_requests()
    async with queries_for(emulator_server) as queries:
        services = await v1_client(queries).list_all(ListParams(**params))
    sent = control.requests()["log"][0]["query"]
    for key, value in params.items():
        assert f"{key}={value}" in sent
    assert [s.service_id for s in services] == [s["service_id"] for s in oracle(control, emulator_server, **params)]


async def test_filter_by_workspace_service_id_name_model_and_tags(
    emulator_server: EmulatorServer, control: Control
) -> None:
    created = control.add(
        service_name="ocr-invoice-special", workspace_id="ws-test", model_id="model-xyz", tags={"team": "ocr"}
    )
    async with queries_for(emulator_server) as queries:
        client = v1_client(queries)
        assert await client.list_all(ListParams(service_name="ocr-invoice-special")) == []  # default workspace only
        by_ws = await client.list_all(ListParams(workspace_id="ws-test"))
        assert [s.service_id for s in by_ws] == [created["service_id"]]
        by_id = await client.list_all(ListParams(service_id=created["service_id"], workspace_id="ws-test"))
        by_name = await client.list_all(ListParams(service_name="ocr-invoice-special", workspace_id="ws-test"))
        by_model = await client.list_all(ListParams(model_id="model-xyz", workspace_id="ws-test"))
        by_tag = await client.list_all(ListParams(tags="team=ocr", workspace_id="ws-test"))
        no_tag = await client.list_all(ListParams(tags="team=other", workspace_id="ws-test"))
    for found in (by_id, by_name, by_model, by_tag):
        assert [s.service_id for s in found] == [created["service_id"]]
    assert no_tag == []


async def test_details_have_config_and_failure_cause(emulator_server: EmulatorServer, control: Control) -> None:
    service_id = oracle(control, emulator_server)[0]["service_id"]
    control.set_status(service_id, "failed", "Image pull failed: manifest unknown")
    async with queries_for(emulator_server) as queries:
        service = await v1_client(queries).get_service(service_id)
    assert service.detail == "details"
    assert service.status == "failed" and service.error_msg == "Image pull failed: manifest unknown"
    assert service.config and service.config[0].model_id
    assert service.transition_at is not None


async def test_unknown_service_id_is_a_404_error(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server) as queries:
        with pytest.raises(ApiNotFoundError) as caught:
            await v1_client(queries).get_service("00000000-0000-0000-0000-000000000000")
    assert caught.value.status == 404 and caught.value.request_id
    assert caught.value.error_code


@pytest.mark.parametrize("bad", ["", "   ", "../etc/passwd", "a b", "x" * 300, "id?x=1"])
async def test_malformed_service_id_is_refused_before_any_request(
    emulator_server: EmulatorServer, control: Control, bad: str
) -> None:
    control.clear_requests()
    async with queries_for(emulator_server) as queries:
        with pytest.raises(QueryError):
            await v1_client(queries).get_service(bad)
    assert control.requests()["total"] == 0


async def test_api_rejection_of_a_parameter_is_not_retried(emulator_server: EmulatorServer, control: Control) -> None:
    control.clear_requests()
    async with queries_for(emulator_server) as queries:
        with pytest.raises(BadRequestError) as caught:
            await v1_client(queries).list_page(ListParams(status="faild"))
    assert caught.value.status == 400 and "faild" in (caught.value.error_msg or "")
    assert control.requests()["by_route"]["list"] == 1


async def test_legacy_list_is_normalised_to_the_same_model(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server) as queries:
        legacy = await v1_client(queries).list_legacy()
        current = await v1_client(queries).list_all(ListParams())
    assert {s.service_id for s in legacy} == {s.service_id for s in current}
    sample = legacy[0]
    assert sample.detail == "legacy" and isinstance(sample.invocation_times, int) and sample.publish_at is not None


async def test_legacy_failure_with_http_200_is_an_error(emulator_server: EmulatorServer, control: Control) -> None:
    from services_bot.core.errors import AuthenticationError

    control.quirks(legacy_error_200=True)
    async with queries_for(emulator_server, modelarts_auth_token="wrong-token") as queries:
        with pytest.raises(AuthenticationError) as caught:
            await v1_client(queries).list_legacy()
    assert "wrong-token" not in caught.value.user_text()


async def test_wrong_project_is_forbidden_with_a_hint(emulator_server: EmulatorServer, control: Control) -> None:
    from services_bot.core.errors import ForbiddenError

    async with queries_for(emulator_server, modelarts_project_id="someone-elses-project") as queries:
        with pytest.raises(ForbiddenError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert "MODELARTS_PROJECT_ID" in caught.value.user_text()
