"""Listing returns every service exactly once, whichever way the server reads `offset`, at every size."""

from __future__ import annotations

import math

import pytest
from services_bot.core.client import ListParams
from services_bot.emulator import EmulatorServer

from tests.conftest import Control, queries_for, v1_client


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
        client = v1_client(queries)
        services = await client.list_all(ListParams())
    ids = [s.service_id for s in services]
    assert len(ids) == len(set(ids)) == size
    assert set(ids) == {s["service_id"] for s in oracle["services"]}
    pages = max(1, math.ceil(size / 1000))
    probe = 1 if size > 1000 else 0  # one half-page probe of the offset reading, once per client
    assert flat_control.requests()["by_route"]["list"] == pages + probe


@pytest.mark.parametrize("mode", ["page", "record"])
async def test_25000_services_in_both_offset_modes(
    flat_server: EmulatorServer, flat_control: Control, mode: str
) -> None:
    flat_control.reset(services=25_000, seed=11)
    flat_control.quirks(offset_mode=mode)
    async with queries_for(flat_server) as queries:
        services = await v1_client(queries).list_all(ListParams())
        assert v1_client(queries).offset_mode == mode
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
            services = await v1_client(q).list_all(ListParams())
            timings[concurrency] = time.monotonic() - started
        assert len({s.service_id for s in services}) == 5_000
    assert timings[8] < 0.5 * timings[1], f"pages were not fetched concurrently: {timings}"
    flat_control.reset(services=0)


async def test_page_size_is_configurable(flat_server: EmulatorServer, flat_control: Control) -> None:
    flat_control.reset(services=57, seed=2)
    flat_control.clear_requests()
    async with queries_for(flat_server, services_bot_page_size=10) as queries:
        services = await v1_client(queries).list_all(ListParams())
    assert len({s.service_id for s in services}) == 57
    queries_sent = [entry["query"] for entry in flat_control.requests()["log"]]
    probes = [q for q in queries_sent if "limit=5&" in q or q.endswith("limit=5")]
    assert len(probes) == 1, "the offset reading is probed once, with half a page"
    assert all("limit=10" in q for q in queries_sent if q not in probes)


async def test_missing_count_field_is_tolerated(flat_server: EmulatorServer, flat_control: Control) -> None:
    flat_control.reset(services=1500, seed=9)
    flat_control.quirks(missing_count=True)
    async with queries_for(flat_server) as queries:
        services = await v1_client(queries).list_all(ListParams())
    assert len({s.service_id for s in services}) == 1500


@pytest.mark.parametrize("mode", ["page", "record"])
async def test_without_total_count_paging_reads_on_until_a_short_page(
    flat_server: EmulatorServer, flat_control: Control, mode: str
) -> None:
    flat_control.reset(services=2500, seed=4)
    flat_control.quirks(missing_total_count=True, missing_count=True, offset_mode=mode)
    async with queries_for(flat_server) as queries:
        services = await v1_client(queries).list_all(ListParams())
    assert len(services) == len({s.service_id for s in services}) == 2500


@pytest.mark.parametrize("mode", ["page", "record"])
async def test_iter_pages_yields_the_listing_a_page_at_a_time(
    flat_server: EmulatorServer, flat_control: Control, mode: str
) -> None:
    """The same services in the same order as ``list_all``, in batches of at most a page."""
    flat_control.reset(services=2_345, seed=6)
    flat_control.quirks(offset_mode=mode)
    async with queries_for(flat_server, services_bot_page_size=500) as queries:
        client = v1_client(queries)
        batches = [rows async for rows in client.iter_pages(ListParams(sort_by="service_name"))]
        listed = await client.list_all(ListParams(sort_by="service_name"))
    assert [len(rows) for rows in batches] == [500, 500, 500, 500, 345]
    assert [s.service_id for rows in batches for s in rows] == [s.service_id for s in listed]
    assert len({s.service_id for s in listed}) == 2_345


async def test_iter_pages_reads_ahead_only_a_few_pages_and_stops_when_closed(
    flat_server: EmulatorServer, flat_control: Control
) -> None:
    """A consumer that stops after three pages of twenty caused six requests (first page, the offset probe,
    then ``concurrency`` = 2 pages ahead plus one per page taken), not twenty; closing leaves nothing running."""
    import asyncio
    from contextlib import aclosing

    flat_control.reset(services=2_000, seed=8)
    flat_control.quirks(offset_mode="page")
    flat_control.clear_requests()
    async with queries_for(flat_server, services_bot_page_size=100, services_bot_concurrency=2) as queries:
        before = len(asyncio.all_tasks())
        async with aclosing(v1_client(queries).iter_pages(ListParams())) as pages:
            taken = [await anext(pages) for _ in range(3)]
            for _ in range(100):  # the pages read ahead arrive (up to 5 s)
                if flat_control.requests()["by_route"]["list"] >= 6:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)  # and nothing more is asked for
            assert flat_control.requests()["by_route"]["list"] == 6
        assert len(asyncio.all_tasks()) == before
    assert [len(rows) for rows in taken] == [100, 100, 100]
