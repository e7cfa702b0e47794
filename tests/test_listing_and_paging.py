"""Listing returns every service exactly once, whichever way the server reads `offset`, at every size."""

from __future__ import annotations

import math

import pytest

from core.client import ListParams
from emulator import EmulatorServer
from tests.conftest import Control, queries_for


@pytest.mark.parametrize("mode", ["page", "record"])
@pytest.mark.parametrize("size", [0, 1, 999, 1000, 1001])
async def test_every_service_listed_exactly_once(
    flat_server: EmulatorServer, flat_control: Control, mode: str, size: int
) -> None:
    flat_control.reset(services=size, seed=size + 1)
    flat_control.quirks(offset_mode=mode)
    oracle = flat_control.list_raw(flat_server.settings.project_id, flat_server.settings.token)
    assert oracle["total_count"] == size
    flat_control.clear_requests()
    async with queries_for(flat_server) as queries:
        client = queries.clients[0]
        services = await client.list_all(ListParams())
    ids = [s.service_id for s in services]
    assert len(ids) == len(set(ids)) == size
    assert set(ids) == {s["service_id"] for s in oracle["services"]}
    pages = max(1, math.ceil(size / 1000))
    probe = 1 if size > 1000 and mode == "record" else 0  # the offset=1 probe is a wasted page only in record mode
    assert flat_control.requests()["by_route"]["list"] == pages + probe


@pytest.mark.parametrize("mode", ["page", "record"])
async def test_25000_services_in_both_offset_modes(
    flat_server: EmulatorServer, flat_control: Control, mode: str
) -> None:
    flat_control.reset(services=25_000, seed=11)
    flat_control.quirks(offset_mode=mode)
    async with queries_for(flat_server) as queries:
        services = await queries.clients[0].list_all(ListParams())
        assert queries.clients[0].offset_mode == mode
    ids = {s.service_id for s in services}
    assert len(services) == len(ids) == 25_000


async def test_remaining_pages_are_fetched_concurrently(flat_server: EmulatorServer, flat_control: Control) -> None:
    """With 200 ms per request, 10 pages fetched 8 at a time take well under half the sequential time."""
    import time

    flat_control.reset(services=5_000, seed=5)
    flat_control.faults(latency_ms=200)
    timings = {}
    for concurrency in (1, 8):
        async with queries_for(flat_server, services_bot_concurrency=concurrency, services_bot_page_size=500) as q:
            started = time.monotonic()
            services = await q.clients[0].list_all(ListParams())
            timings[concurrency] = time.monotonic() - started
        assert len({s.service_id for s in services}) == 5_000
    assert timings[8] < 0.5 * timings[1], f"pages were not fetched concurrently: {timings}"
    flat_control.reset(services=0)


async def test_page_size_is_configurable(flat_server: EmulatorServer, flat_control: Control) -> None:
    flat_control.reset(services=57, seed=2)
    flat_control.clear_requests()
    async with queries_for(flat_server, services_bot_page_size=10) as queries:
        services = await queries.clients[0].list_all(ListParams())
    assert len({s.service_id for s in services}) == 57
    log = flat_control.requests()["log"]
    assert all("limit=10" in entry["query"] for entry in log)


async def test_missing_count_field_is_tolerated(flat_server: EmulatorServer, flat_control: Control) -> None:
    flat_control.reset(services=1500, seed=9)
    flat_control.quirks(missing_count=True)
    async with queries_for(flat_server) as queries:
        services = await queries.clients[0].list_all(ListParams())
    assert len({s.service_id for s in services}) == 1500


@pytest.mark.parametrize("mode", ["page", "record"])
async def test_without_total_count_paging_reads_on_until_a_short_page(
    flat_server: EmulatorServer, flat_control: Control, mode: str
) -> None:
    flat_control.reset(services=2500, seed=4)
    flat_control.quirks(missing_total_count=True, missing_count=True, offset_mode=mode)
    async with queries_for(flat_server) as queries:
        services = await queries.clients[0].list_all(ListParams())
    assert len(services) == len({s.service_id for s in services}) == 2500
