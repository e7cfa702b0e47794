"""The events and load tools through the MCP SDK's own client, against the emulator: a failed service's
abnormal events with totals and a cursor, its load, and a text that carries every row for text-only models."""

from __future__ import annotations

import re

from mcp import Client
from services_bot.emulator import EmulatorServer

from tests.conftest import Control
from tests.test_mcp_tools import _text, server_for


async def test_events_of_a_failed_service_name_the_cause_with_totals(
    emulator_server: EmulatorServer, control: Control
) -> None:
    control.add(service_name="mcp-why", status="failed", error_msg="image pull failed: manifest unknown")
    async with Client(server_for(emulator_server)) as client:
        abnormal = await client.call_tool("get_service_events", {"service": "mcp-why", "event_type": "abnormal"})
    assert not abnormal.is_error
    data = abnormal.structured_content
    assert data is not None and data["total"] >= 1 and data["returned"] == len(data["events"])
    assert all(e["kind"] in ("abnormal", "warning") for e in data["events"])
    assert any("image pull failed: manifest unknown" in e["text"] for e in data["events"])
    assert data["last_update"]["result"] == "fail" and data["next_cursor"] is None
    text = _text(abnormal)
    assert "image pull failed: manifest unknown" in text and f"total: {data['total']} events" in text
    assert "next_cursor: null" in text and "last update:" in text


async def test_a_text_only_model_pages_through_every_event(emulator_server: EmulatorServer, control: Control) -> None:
    control.add(service_name="mcp-pages", status="running")
    seen: list[str] = []
    args: dict = {"service": "mcp-pages", "limit": 3}
    async with Client(server_for(emulator_server)) as client:
        whole = (
            await client.call_tool("get_service_events", {"service": "mcp-pages", "limit": 100})
        ).structured_content
        while True:
            text = _text(await client.call_tool("get_service_events", args))
            total = int(re.search(r"total: (\d+) events", text).group(1))  # type: ignore[union-attr]
            seen += [line for line in text.splitlines()[4:] if " | " in line]
            cursor = re.search(r'next_cursor: "([^"]+)"', text)
            if not cursor:
                break
            args["cursor"] = cursor.group(1)
    assert whole is not None and total == whole["total"] > 3
    assert len(seen) == total, "every row of every page is in the text"


async def test_load_of_a_concerning_service_says_instances_are_down(
    emulator_server: EmulatorServer, control: Control
) -> None:
    control.add(service_name="mcp-load", status="concerning")
    async with Client(server_for(emulator_server)) as client:
        result = await client.call_tool("get_service_load", {"service": "mcp-load"})
    assert not result.is_error
    data = result.structured_content
    assert data is not None and data["instances_down"] is True
    assert data["load"]["running"] < data["load"]["wanted"] and data["load"]["models"]
    assert "INSTANCES DOWN" in _text(result)


async def test_bad_event_arguments_are_tool_errors_that_say_the_fix(
    emulator_server: EmulatorServer, control: Control
) -> None:
    control.add(service_name="mcp-args", status="running")
    async with Client(server_for(emulator_server)) as client:
        unknown = await client.call_tool("get_service_events", {"service": "mcp-argz"})
        since = await client.call_tool("get_service_events", {"service": "mcp-args", "since": "soon"})
        cursor = await client.call_tool("get_service_events", {"service": "mcp-args", "cursor": "bogus"})
    assert unknown.is_error and "mcp-args" in _text(unknown)
    assert since.is_error and "not a duration" in _text(since)
    assert cursor.is_error and "cursor" in _text(cursor)


async def test_a_failing_events_call_still_answers_with_a_note(
    emulator_server: EmulatorServer, control: Control
) -> None:
    control.add(service_name="mcp-dark", status="failed", error_msg="x")
    control.faults(error_status=503, error_count=1000, paths=["/events"])
    try:
        async with Client(server_for(emulator_server)) as client:
            result = await client.call_tool("get_service_events", {"service": "mcp-dark"})
    finally:
        control.faults(error_count=0, paths=None)
    assert not result.is_error
    data = result.structured_content
    assert data is not None and data["notes"] and "Events could not be read" in data["notes"][0]
    assert any(e["source"] == "update" for e in data["events"]), "the update logs still came"
