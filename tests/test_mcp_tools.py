"""The MCP tools, called through the MCP SDK's own client: in-process and over stdio, against the emulator."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from services_bot.core.notifications import Transition
from services_bot.core.store import Store
from services_bot.emulator import EmulatorServer
from services_bot.tools.server import create_mcp_server

from services_bot.wiring import open_queries
from tests.conftest import Control, make_settings

TOOLS = {"list_services", "get_service", "summarize_services", "list_transitions", "list_targets"}


def server_for(emulator_server: EmulatorServer):  # type: ignore[no-untyped-def]
    settings = make_settings(emulator_server)
    return create_mcp_server(lambda: open_queries(settings))


async def test_tools_are_read_only_with_schemas(emulator_server: EmulatorServer, control: Control) -> None:
    async with Client(server_for(emulator_server)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool.annotations and tool.annotations.read_only_hint and tool.annotations.idempotent_hint
        assert tool.description and "Example" in tool.description
        assert tool.output_schema is not None
    status_schema = str(tools["list_services"].input_schema)
    assert "concerning" in status_schema and "real-time" in status_schema


async def test_list_services_pages_with_a_cursor_and_gives_totals(
    emulator_server: EmulatorServer, control: Control
) -> None:
    seen: list[str] = []
    async with Client(server_for(emulator_server)) as client:
        args: dict = {"limit": 40, "sort_by": "name"}
        while True:
            result = await client.call_tool("list_services", args)
            assert not result.is_error
            page = result.structured_content
            assert page is not None
            seen += [row["service_id"] for row in page["services"]]
            if not page["next_cursor"]:
                break
            args = {**args, "cursor": page["next_cursor"]}
    assert len(seen) == len(set(seen)) == page["total"]


async def test_failed_rows_carry_their_error(emulator_server: EmulatorServer, control: Control) -> None:
    row = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)["services"][0]
    control.set_status(row["service_id"], "failed", "GPU driver mismatch")
    async with Client(server_for(emulator_server)) as client:
        listed = (await client.call_tool("list_services", {"status": ["failed"]})).structured_content
        summary = (await client.call_tool("summarize_services", {})).structured_content
        detail = (await client.call_tool("get_service", {"service": row["service_id"]})).structured_content
    assert listed and any(r.get("error_msg") == "GPU driver mismatch" for r in listed["services"])
    assert summary and summary["by_status"]["failed"] >= 1
    assert detail and detail["error_msg"] == "GPU driver mismatch" and detail["config"]


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("get_service", {"service": "no-such-service"}, "No service with id or name"),
        ("list_services", {"status": ["faild"]}, "failed"),
        ("list_services", {"cursor": "bogus"}, "cursor"),
        ("list_services", {"limit": 0}, "limit"),
    ],
)
async def test_bad_calls_are_tool_errors_that_say_how_to_fix_them(
    emulator_server: EmulatorServer, control: Control, tool: str, args: dict, fragment: str
) -> None:
    async with Client(server_for(emulator_server)) as client:
        result = await client.call_tool(tool, args)
    assert result.is_error
    text = " ".join(getattr(c, "text", "") for c in result.content)
    assert fragment in text and "Traceback" not in text


async def test_api_failure_is_a_tool_error(emulator_server: EmulatorServer, control: Control) -> None:
    control.faults(error_status=500, error_count=100)
    async with Client(server_for(emulator_server)) as client:
        result = await client.call_tool("summarize_services", {})
    assert result.is_error and "ModelArts" in " ".join(getattr(c, "text", "") for c in result.content)


def _stdio(emulator_server: EmulatorServer, db: Path) -> StdioServerParameters:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SERVICES_BOT_"))}
    env.update(
        MODELARTS_ENDPOINT=emulator_server.url,
        MODELARTS_PROJECT_ID=emulator_server.settings.project_id,
        MODELARTS_AUTH_TOKEN=emulator_server.settings.token,
        SERVICES_BOT_DB=str(db),
    )
    return StdioServerParameters(command=sys.executable, args=["-m", "services_bot.cli", "mcp"], env=env, cwd="/")


async def test_services_bot_mcp_over_stdio(emulator_server: EmulatorServer, control: Control, tmp_path: Path) -> None:
    async with Client(_stdio(emulator_server, tmp_path / "none.db")) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        result = await client.call_tool("summarize_services", {})
        history = await client.call_tool("list_transitions", {})
    assert not result.is_error and result.structured_content and result.structured_content["total"] > 0
    assert history.is_error and "services-bot serve" in history.content[0].text  # type: ignore[union-attr]
    assert not (tmp_path / "none.db").exists(), "no empty store is created where serve has none"


async def test_list_transitions_over_stdio_reads_the_store_serve_keeps(
    emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    db = tmp_path / "store.db"
    seen = Transition(
        target="default", service_id="svc-1", service_name="ocr-prod", kind="changed", from_status="running",
        to_status="failed", transition_at=datetime.now(UTC), error_msg="OOMKilled",
    )  # fmt: skip
    async with Store(db) as store:
        await store.record_poll("default", "p1", [], [], [seen], None)
    async with Client(_stdio(emulator_server, db)) as client:
        found = await client.call_tool("list_transitions", {"since": "1h", "to_status": ["failed"]})
        wrong = await client.call_tool("list_transitions", {"since": "yesterday"})
        empty = await client.call_tool("list_transitions", {"to_status": ["running"]})
    rows = found.structured_content["transitions"]  # type: ignore[index]
    assert [(r["service_name"], r["from_status"], r["to_status"], r["error_msg"]) for r in rows] == [
        ("ocr-prod", "running", "failed", "OOMKilled")
    ]
    assert wrong.is_error and "not a duration" in wrong.content[0].text  # type: ignore[union-attr]
    assert not empty.is_error and empty.structured_content["returned"] == 0  # type: ignore[index]


async def test_service_resource_and_triage_prompt(emulator_server: EmulatorServer, control: Control) -> None:
    created = control.add(service_name="mcp-resource-target", status="running")
    async with Client(server_for(emulator_server)) as client:
        templates = (await client.list_resource_templates()).resource_templates
        assert [t.uri_template for t in templates] == ["modelarts://services/{service_id}"]
        read = await client.read_resource(f"modelarts://services/{created['service_id']}")
        prompts = {p.name for p in (await client.list_prompts()).prompts}
        prompt = await client.get_prompt("triage_unhealthy_services", {})
    assert created["service_id"] in read.contents[0].text  # type: ignore[union-attr]
    assert prompts == {"triage_unhealthy_services"}
    assert "summarize_services" in str(prompt.messages[0].content)


def _mcp_http_process(emulator_server: EmulatorServer, port: int, **extra: str):  # type: ignore[no-untyped-def]
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SERVICES_BOT_"))}
    env.update(
        MODELARTS_ENDPOINT=emulator_server.url,
        MODELARTS_PROJECT_ID=emulator_server.settings.project_id,
        MODELARTS_AUTH_TOKEN=emulator_server.settings.token,
        **extra,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "services_bot.cli", "mcp", "--transport", "http", "--port", str(port)],
        env=env,
        cwd="/",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def test_mcp_over_http_requires_the_bearer_token(emulator_server: EmulatorServer, control: Control) -> None:
    import asyncio
    import socket

    import httpx
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = _mcp_http_process(emulator_server, port, SERVICES_BOT_MCP_TOKEN="s3cret-mcp-token")
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        async with httpx.AsyncClient() as probe:
            for _ in range(100):
                try:
                    refused = await probe.post(url, json={})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert refused.status_code == 401
            wrong = await probe.post(url, json={}, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        http = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-mcp-token"})
        async with Client(streamable_http_client(url, http_client=http)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            result = await client.call_tool("list_services", {"status": ["running"], "limit": 3})
        assert not result.is_error and result.structured_content and result.structured_content["returned"] <= 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_mcp_over_http_off_loopback_without_a_token_refuses_to_start(emulator_server: EmulatorServer) -> None:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SERVICES_BOT_"))}
    env.update(MODELARTS_ENDPOINT=emulator_server.url, MODELARTS_PROJECT_ID="p", MODELARTS_AUTH_TOKEN="t")
    proc = subprocess.run(
        [sys.executable, "-m", "services_bot.cli", "mcp", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        cwd="/",
    )
    assert proc.returncode == 2 and "SERVICES_BOT_MCP_TOKEN" in proc.stderr and "Traceback" not in proc.stderr


async def test_answers_are_compact_unless_full_detail_is_asked(
    emulator_server: EmulatorServer, control: Control
) -> None:
    async with Client(server_for(emulator_server)) as client:
        compact = await client.call_tool("list_services", {"limit": 5})
        full = await client.call_tool("list_services", {"limit": 5, "detail": "full"})
    rows = compact.structured_content["services"]  # type: ignore[index]
    assert all("owner" not in r and "publish_at" not in r for r in rows)
    assert all("publish_at" in r for r in full.structured_content["services"])  # type: ignore[index]
    text = " ".join(getattr(c, "text", "") for c in compact.content)
    assert "returned: 5" in text and "{" not in text  # a table of the rows, not the JSON again
    assert all(r["service_id"] in text for r in rows)


async def test_get_service_by_exact_name_and_ambiguous_name(emulator_server: EmulatorServer, control: Control) -> None:
    one = control.add(service_name="mcp-by-name", status="running")
    control.add(service_name="mcp-twin", status="running")
    control.add(service_name="mcp-twin", status="stopped")
    async with Client(server_for(emulator_server)) as client:
        found = await client.call_tool("get_service", {"service": "mcp-by-name"})
        twins = await client.call_tool("get_service", {"service": "mcp-twin"})
    assert found.structured_content and found.structured_content["service_id"] == one["service_id"]
    assert twins.is_error and "service id" in " ".join(getattr(c, "text", "") for c in twins.content)
