"""The query layer: filters, sorting, answer paging, summaries, and finding one service by id or name."""

from __future__ import annotations

from collections import Counter

import pytest
from services_bot.core.errors import AmbiguousServiceError, QueryError, ServiceNotFoundError
from services_bot.core.query import ServiceQuery
from services_bot.emulator import EmulatorServer, EmulatorSettings

from tests.conftest import Control, queries_for


def raw(control: Control, server: EmulatorServer, **params: str) -> list[dict]:
    return control.list_raw(server.settings.project_id, server.settings.token, **params)["services"]


async def test_failed_services_are_listed_with_their_error(emulator_server: EmulatorServer, control: Control) -> None:
    rows = raw(control, emulator_server)
    for row in rows[:3]:
        control.set_status(row["service_id"], "failed", f"Insufficient resources for {row['service_name']}")
    async with queries_for(emulator_server) as queries:
        result = await queries.list(ServiceQuery.build(statuses="failed"))
    expected = {r["service_id"] for r in raw(control, emulator_server, status="failed")}
    assert {s.service_id for s in result.services} == expected and result.total == len(expected)
    by_id = {s.service_id: s for s in result.services}
    for row in rows[:3]:
        assert by_id[row["service_id"]].error_msg == f"Insufficient resources for {row['service_name']}"


async def test_several_statuses_make_one_request_each(emulator_server: EmulatorServer, control: Control) -> None:
    """Per generation read: the target is pinned to v1 here (v2 is asked once per status too, test_v2)."""
    control.clear_requests()
    async with queries_for(emulator_server, modelarts_api_generation="v1") as queries:
        result = await queries.list(ServiceQuery.build(statuses="unhealthy", limit=1000))
    queries_sent = sorted(e["query"] for e in control.requests()["log"] if e["path"].endswith("/services"))
    assert len(queries_sent) == 2
    assert any("status=failed" in q for q in queries_sent) and any("status=concerning" in q for q in queries_sent)
    expected = {r["service_id"] for r in raw(control, emulator_server) if r["status"] in ("failed", "concerning")}
    assert {s.service_id for s in result.services} == expected


async def test_name_substring_and_glob_are_matched_locally(emulator_server: EmulatorServer, control: Control) -> None:
    rows = raw(control, emulator_server)
    word = rows[0]["service_name"].split("-")[0]
    async with queries_for(emulator_server) as queries:
        sub = await queries.list(ServiceQuery.build(name=word.upper(), limit=1000))
        glob = await queries.list(ServiceQuery.build(name=f"{word}-*", limit=1000))
    assert {s.service_id for s in sub.services} == {r["service_id"] for r in rows if word in r["service_name"]}
    assert {s.service_id for s in glob.services} == {
        r["service_id"] for r in rows if r["service_name"].startswith(f"{word}-")
    }


async def test_type_and_workspace_filters(emulator_server: EmulatorServer, control: Control) -> None:
    workspace = next(r for r in raw(control, emulator_server, workspace_id="0"))["workspace_id"]
    async with queries_for(emulator_server) as queries:
        batch = await queries.list(ServiceQuery.build(infer_type="batch", limit=1000))
        in_ws = await queries.list(ServiceQuery.build(workspace_id=str(workspace), limit=1000))
    assert batch.total and all(s.infer_type == "batch" for s in batch.services)
    assert in_ws.total and all(s.workspace_id == str(workspace) for s in in_ws.services)


async def test_sorting_by_name_and_by_change_time(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server) as queries:
        by_name = await queries.list(ServiceQuery.build(sort="name", limit=1000))
        by_change = await queries.list(ServiceQuery.build(sort="changed", order="asc", limit=1000))
    names = [(s.service_name or "").lower() for s in by_name.services]
    assert names == sorted(names)
    times = [s.transition_at for s in by_change.services if s.transition_at]
    assert times == sorted(times)


async def test_paging_through_an_answer_with_cursors_sees_everything_once(
    emulator_server: EmulatorServer, control: Control
) -> None:
    async with queries_for(emulator_server) as queries:
        query = ServiceQuery.build(limit=7, sort="name")
        seen: list[str] = []
        pages = 0
        while True:
            result = await queries.list(query)
            seen += [s.service_id for s in result.services]
            pages += 1
            if not result.next_cursor:
                break
            query = query.model_copy(update={"cursor": result.next_cursor})
    assert len(seen) == len(set(seen)) == result.total
    assert pages == -(-result.total // 7)


async def test_a_cursor_from_another_query_is_refused(emulator_server: EmulatorServer, control: Control) -> None:
    async with queries_for(emulator_server) as queries:
        first = await queries.list(ServiceQuery.build(limit=2))
        assert first.next_cursor
        with pytest.raises(QueryError, match="different query"):
            await queries.list(ServiceQuery.build(limit=2, statuses="running", cursor=first.next_cursor))
        with pytest.raises(QueryError, match="not one this bot issued"):
            await queries.list(ServiceQuery.build(cursor="garbage!!"))


async def test_summary_counts_match_the_listing(emulator_server: EmulatorServer, control: Control) -> None:
    rows = raw(control, emulator_server)
    control.set_status(rows[0]["service_id"], "failed", "OOMKilled")
    rows = raw(control, emulator_server)
    async with queries_for(emulator_server) as queries:
        summary = await queries.summary()
    assert summary.total == len(rows)
    assert summary.by_status == dict(Counter(r["status"] for r in rows))
    assert summary.by_infer_type == dict(Counter(r["infer_type"] for r in rows))
    unhealthy = [r for r in rows if r["status"] in ("failed", "concerning")]
    assert summary.unhealthy_total == len(unhealthy)
    assert any(s.error_msg == "OOMKilled" for s in summary.unhealthy)


async def test_a_page_near_the_top_and_a_deep_page_agree_with_the_whole_sorted_listing(
    emulator_server: EmulatorServer, control: Control
) -> None:
    """The first page is picked without sorting the fleet, a deep one by sorting it: both show what the whole
    listing, sorted, shows at those places."""
    async with queries_for(emulator_server) as queries:
        whole = await queries.list(ServiceQuery.build(sort="changed", limit=1000))
        top = await queries.list(ServiceQuery.build(sort="changed", limit=3))
        deep_query = ServiceQuery.build(sort="changed", limit=3)
        while True:  # page on until the last page, which a heap no longer picks
            page = await queries.list(deep_query)
            if not page.next_cursor:
                break
            deep_query = deep_query.model_copy(update={"cursor": page.next_cursor})
    ids = [s.service_id for s in whole.services]
    assert whole.total == len(ids) > 24  # the top page is then picked from more than 8 times its size
    assert [s.service_id for s in top.services] == ids[:3]
    assert [s.service_id for s in page.services] == ids[page.offset :]


async def test_a_summary_shows_the_latest_unhealthy_and_counts_them_all(
    emulator_server: EmulatorServer, control: Control
) -> None:
    rows = [r for r in raw(control, emulator_server) if r["status"] == "running"][:30]
    for row in rows:
        control.set_status(row["service_id"], "failed", "OOMKilled")
    unhealthy = [r for r in raw(control, emulator_server) if r["status"] in ("failed", "concerning")]
    async with queries_for(emulator_server) as queries:
        summary = await queries.summary()
    assert summary.unhealthy_total == len(unhealthy) >= 30
    assert len(summary.unhealthy) == 25
    times = [s.transition_at for s in summary.unhealthy]
    assert times == sorted(times, reverse=True)
    newest = max(r["transition_at"] for r in unhealthy)
    assert summary.unhealthy[0].transition_at is not None
    assert int(summary.unhealthy[0].transition_at.timestamp() * 1000) == newest


async def test_show_by_id_and_by_exact_name(emulator_server: EmulatorServer, control: Control) -> None:
    created = control.add(service_name="fraud-scoring-unique", status="running")
    async with queries_for(emulator_server) as queries:
        by_id = await queries.get(created["service_id"])
        by_name = await queries.get("fraud-scoring-unique")
    assert by_id.service_id == by_name.service_id == created["service_id"]
    assert by_name.detail == "details" and by_name.config


async def test_ambiguous_name_lists_the_candidates(emulator_server: EmulatorServer, control: Control) -> None:
    a = control.add(service_name="twin-service", status="running")
    b = control.add(service_name="twin-service", status="failed")
    async with queries_for(emulator_server) as queries:
        with pytest.raises(AmbiguousServiceError) as caught:
            await queries.get("twin-service")
    assert {c["service_id"] for c in caught.value.candidates} == {a["service_id"], b["service_id"]}
    assert "service id" in caught.value.user_text()


async def test_unknown_name_suggests_the_closest(emulator_server: EmulatorServer, control: Control) -> None:
    control.add(service_name="llm-chat-gateway-eu", status="running")
    async with queries_for(emulator_server) as queries:
        with pytest.raises(ServiceNotFoundError) as caught:
            await queries.get("llm-chat-gateway-ue")
    assert "llm-chat-gateway-eu" in caught.value.closest


async def test_listings_are_reused_within_the_cache_window(emulator_server: EmulatorServer, control: Control) -> None:
    control.clear_requests()
    async with queries_for(emulator_server, services_bot_cache_seconds=30) as queries:
        first = await queries.list(ServiceQuery.build(limit=5))
        assert first.next_cursor
        await queries.list(ServiceQuery.build(limit=5, cursor=first.next_cursor))
        await queries.summary()
    assert control.requests()["by_route"]["list"] == 1


async def test_several_targets_are_merged_and_a_dead_one_is_a_warning(
    emulator_server: EmulatorServer, control: Control, tmp_path
) -> None:
    from services_bot.emulator import EmulatorServer as Server

    with Server(
        EmulatorSettings(port=0, services=20, seed=99, project_id=emulator_server.settings.project_id)
    ) as other:
        config = tmp_path / "targets.toml"
        config.write_text(
            f'[[targets]]\nname = "a"\nendpoint = "{emulator_server.url}"\n'
            f'project_id = "{emulator_server.settings.project_id}"\n'
            f'[[targets]]\nname = "b"\nendpoint = "{other.url}"\nproject_id = "{other.settings.project_id}"\n'
        )
        async with queries_for(emulator_server, services_bot_config=config) as queries:
            both = await queries.list(ServiceQuery.build(limit=1000))
            only_b = await queries.list(ServiceQuery.build(limit=1000, target="b"))
            with pytest.raises(QueryError, match="Did you mean 'b'"):
                await queries.list(ServiceQuery.build(target="bb"))
        expected_a = len(raw(control, emulator_server))
        assert both.total == expected_a + only_b.total and {s.target for s in both.services} == {"a", "b"}
    config.write_text(config.read_text().replace(other.url, "http://127.0.0.1:9"))
    async with queries_for(emulator_server, services_bot_config=config, services_bot_max_retries=0) as queries:
        partial = await queries.list(ServiceQuery.build(limit=1000))
    assert partial.total == expected_a and any("Target b could not be read" in w for w in partial.warnings)
