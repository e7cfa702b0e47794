"""Each way of authenticating works against the emulator, and failures say what to fix without leaking secrets."""

from __future__ import annotations

import logging

import pytest
from services_bot.core.auth import IamPasswordToken
from services_bot.core.client import ListParams
from services_bot.core.errors import AuthenticationError
from services_bot.emulator import EmulatorServer

from tests.conftest import Control, queries_for, v1_client

# a space, a plus, the query's own delimiters and non-ASCII: everything a form encoder and RFC 3986 disagree on
AWKWARD_NAMES = ["ocr prod", "a+b & c=d", "ocr-ü/2"]


def aksk_settings(server: EmulatorServer, sk: str | None = None) -> dict:
    s = server.settings
    return {"modelarts_auth_token": None, "huaweicloud_sdk_ak": s.ak, "huaweicloud_sdk_sk": sk or s.sk}


def iam_settings(server: EmulatorServer, password: str | None = None) -> dict:
    s = server.settings
    return {
        "modelarts_auth_token": None,
        "huaweicloud_iam_username": s.iam_user,
        "huaweicloud_iam_password": password or s.iam_password,
        "huaweicloud_iam_domain": s.iam_domain,
        "huaweicloud_iam_endpoint": server.url,
    }


async def test_static_token(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server) as queries:
        assert await v1_client(queries).list_all(ListParams())


async def test_static_token_rejected_says_which_setting(
    emulator_server: EmulatorServer, control: Control, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with queries_for(emulator_server, modelarts_auth_token="expired-secret-token") as queries:
        with pytest.raises(AuthenticationError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert caught.value.status == 401 and "MODELARTS_AUTH_TOKEN" in caught.value.user_text()
    assert "expired-secret-token" not in caught.value.user_text() + caplog.text
    assert control.requests()["by_route"]["list"] == 1  # a 401 with a static token is not retried


async def test_iam_password_token_is_fetched_once_and_reused(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server, **iam_settings(emulator_server)) as queries:
        client = v1_client(queries)
        for _ in range(3):
            assert await client.list_all(ListParams())
        await client.get_service((await client.list_all(ListParams()))[0].service_id)
        assert isinstance(client.credentials, IamPasswordToken) and client.credentials.logins == 1
    assert control.requests()["by_route"]["iam"] == 1


async def test_iam_token_expired_server_side_is_refreshed_once(
    emulator_server: EmulatorServer, control: Control
) -> None:
    async with queries_for(emulator_server, **iam_settings(emulator_server)) as queries:
        client = v1_client(queries)
        await client.list_all(ListParams())
        control.post("/tokens/expire")
        assert await client.list_all(ListParams())  # 401 → new token → success
        assert isinstance(client.credentials, IamPasswordToken) and client.credentials.logins == 2


async def test_iam_token_is_refreshed_before_it_expires(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(token_ttl_seconds=60)  # shorter than the 5-minute refresh margin
    async with queries_for(emulator_server, **iam_settings(emulator_server)) as queries:
        client = v1_client(queries)
        await client.list_all(ListParams())
        await client.list_all(ListParams())
        assert isinstance(client.credentials, IamPasswordToken) and client.credentials.logins == 2
    assert control.requests()["by_route"]["list"] == 2  # no request was spent on a 401


async def test_wrong_iam_password_is_explained_and_not_leaked(
    emulator_server: EmulatorServer, control: Control, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with queries_for(emulator_server, **iam_settings(emulator_server, password="Wr0ng-Secret!")) as queries:
        with pytest.raises(AuthenticationError) as caught:
            await v1_client(queries).list_all(ListParams())
    text = caught.value.user_text()
    assert "HUAWEICLOUD_IAM_PASSWORD" in text and "demo" in text
    assert "Wr0ng-Secret!" not in text + caplog.text


async def test_aksk_signed_requests_are_accepted(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server, **aksk_settings(emulator_server)) as queries:
        client = v1_client(queries)
        services = await client.list_all(ListParams(status="running", sort_by="service_name"))
        assert services
        assert (await client.get_service(services[0].service_id)).service_id == services[0].service_id
        assert await client.list_legacy()


async def test_wrong_secret_key_is_refused(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server, **aksk_settings(emulator_server, sk="not-the-secret")) as queries:
        with pytest.raises(AuthenticationError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert "not-the-secret" not in caught.value.user_text()
    assert "clock" in caught.value.user_text()


async def test_iam_briefly_unavailable_is_retried(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(error_status=503, error_count=1, paths=["/v3/"])
    async with queries_for(emulator_server, **iam_settings(emulator_server)) as queries:
        assert await v1_client(queries).list_all(ListParams())
    assert control.requests()["by_route"]["iam"] == 2


async def test_aksk_names_with_spaces_and_reserved_characters_are_found(
    emulator_server: EmulatorServer, control: Control
) -> None:
    """Issue item 6: the emulator verifies like Huawei's gateway (a '+' is a plus), so the wire URL must be the
    very query the signature covers; a '+' for a space would be a 401, and five of those lock the AK."""
    created = {name: control.add(service_name=name)["service_id"] for name in AWKWARD_NAMES}
    control.clear_requests()
    async with queries_for(emulator_server, **aksk_settings(emulator_server)) as queries:
        for name, service_id in created.items():
            assert (await queries.get(name)).service_id == service_id
    listed = [e["query"] for e in control.requests()["log"] if e["path"].endswith("/services")]
    assert "limit=1000&offset=0&service_name=ocr%20prod" in listed
    assert "limit=1000&offset=0&service_name=a%2Bb%20%26%20c%3Dd" in listed
    assert "limit=1000&offset=0&service_name=ocr-%C3%BC%2F2" in listed
    assert all(e["status"] == 200 for e in control.requests()["log"])
