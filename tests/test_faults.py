"""Faults heal through bounded retries, or end in a typed error that says what happened and what to do."""

from __future__ import annotations

import socket
import time

import pytest
from services_bot.core.client import ListParams
from services_bot.core.errors import MalformedResponseError, RateLimitedError, ServerError, UnavailableError
from services_bot.emulator import EmulatorServer

from tests.conftest import Control, queries_for, v1_client


async def test_a_burst_of_5xx_is_retried_away(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(error_status=503, error_count=2)
    control.clear_requests()
    async with queries_for(emulator_server) as queries:
        assert await v1_client(queries).list_all(ListParams())
    assert control.requests()["by_route"]["list"] == 3


async def test_persistent_5xx_gives_up_after_the_retry_count(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(error_status=500, error_count=100)
    control.clear_requests()
    async with queries_for(emulator_server, services_bot_max_retries=3) as queries:
        with pytest.raises(ServerError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert caught.value.attempts == 4 and caught.value.status == 500
    assert control.requests()["by_route"]["list"] == 4
    assert "try again" in caught.value.user_text()


async def test_html_error_page_is_classified_by_status(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(error_status=502, error_count=100, error_body="html")
    async with queries_for(emulator_server, services_bot_max_retries=1) as queries:
        with pytest.raises(ServerError) as caught:
            await v1_client(queries).get_service("00000000-0000-0000-0000-000000000001")
    assert caught.value.status == 502 and caught.value.error_code is None
    assert "<html>" not in caught.value.user_text()


async def test_429_waits_as_long_as_retry_after_says(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(rate_limit_count=1, retry_after=1)
    async with queries_for(emulator_server) as queries:
        started = time.monotonic()
        assert await v1_client(queries).list_all(ListParams())
        elapsed = time.monotonic() - started
    assert elapsed >= 0.95, "Retry-After was not honoured"


async def test_429_beyond_the_budget_fails_fast_with_when_to_retry(
    emulator_server: EmulatorServer, control: Control
) -> None:
    control.faults(rate_limit_count=100, retry_after=30)
    async with queries_for(emulator_server, services_bot_retry_budget_seconds=5) as queries:
        started = time.monotonic()
        with pytest.raises(RateLimitedError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == 30 and "try again in 30 s" in caught.value.user_text()


async def test_slow_api_times_out_within_the_budget(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(latency_ms=1500)
    async with queries_for(
        emulator_server,
        services_bot_timeout_seconds=0.3,
        services_bot_max_retries=2,
        services_bot_retry_budget_seconds=3,
    ) as queries:
        started = time.monotonic()
        with pytest.raises(UnavailableError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert time.monotonic() - started < 3
    assert caught.value.attempts == 3 and "did not answer in time" in caught.value.user_text()


async def test_one_malformed_body_is_retried(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(malformed_count=1)
    async with queries_for(emulator_server) as queries:
        assert await v1_client(queries).list_all(ListParams())


async def test_persistently_malformed_body_is_reported(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(malformed_count=100)
    async with queries_for(emulator_server, services_bot_max_retries=2) as queries:
        with pytest.raises(MalformedResponseError) as caught:
            await v1_client(queries).list_all(ListParams())
    assert "not the documented JSON" in caught.value.user_text()


async def test_nothing_listening_is_an_unavailable_error(emulator_server: EmulatorServer) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with queries_for(
        emulator_server, modelarts_endpoint=f"http://127.0.0.1:{port}", services_bot_max_retries=1
    ) as q:
        with pytest.raises(UnavailableError) as caught:
            await v1_client(q).list_all(ListParams())
    assert "MODELARTS_ENDPOINT" in caught.value.user_text() and caught.value.attempts == 2
