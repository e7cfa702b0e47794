"""The MCP tools, called through the MCP SDK's own client: in-process and over stdio, against the emulator."""

from __future__ import annotations

import json
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

TOOLS = {
    "list_services", "get_service", "summarize_services", "list_transitions", "list_targets",
    "get_service_events", "get_service_load",
}  # fmt: skip


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
        assert client.protocol_version == "2026-07-28"
        resources = client.server_capabilities.resources
        assert resources and not resources.subscribe, "no watcher behind stdio `mcp`: no subscriptions offered"
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
    from mcp.shared.exceptions import MCPError

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
            lower = await probe.post(url, json={}, headers={"Authorization": "bearer s3cret-mcp-token"})
            assert lower.status_code != 401, "the scheme is case-insensitive (RFC 9110)"
        http = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret-mcp-token"})
        async with Client(streamable_http_client(url, http_client=http)) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            result = await client.call_tool("list_services", {"status": ["running"], "limit": 3})
            assert client.protocol_version == "2026-07-28"
            with pytest.raises(MCPError) as unknown:  # the SDK's single-exchange HTTP path answered -32603
                await client.get_prompt("no_such_prompt", {})
        assert not result.is_error and result.structured_content and result.structured_content["returned"] <= 3
        assert unknown.value.error.code == -32602 and "no_such_prompt" in unknown.value.error.message
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


# -- what a model reads, and how its mistakes are answered (issue 14) ---------------------------------


def _text(result) -> str:  # type: ignore[no-untyped-def]
    return "\n".join(getattr(c, "text", "") for c in result.content)


async def test_every_tool_follows_the_conventions(emulator_server: EmulatorServer, control: Control) -> None:
    async with Client(server_for(emulator_server)) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.title, tool.name
        assert tool.description and "\n    " not in tool.description, f"{tool.name}: docstring indentation"
        assert tool.description.count("Example:") == 1, tool.name
        schema = tool.output_schema or {}
        assert schema.get("properties"), f"{tool.name}: an output schema that validates something"
    get_service = next(t for t in tools if t.name == "get_service")
    assert {"service_id", "status", "error_msg", "config"} <= set(get_service.output_schema["properties"])  # type: ignore[index]
    reading = [t for t in tools if t.name in {"list_services", "get_service", "summarize_services", "list_transitions"}]
    assert all("target" in t.input_schema["properties"] for t in reading)


async def test_a_model_reading_only_text_pages_to_the_last_service(
    emulator_server: EmulatorServer, control: Control
) -> None:
    import re

    seen: list[str] = []
    args: dict = {"limit": 30, "sort_by": "name"}
    async with Client(server_for(emulator_server)) as client:
        while True:
            text = _text(await client.call_tool("list_services", args))
            total = int(re.search(r"total: (\d+) services", text).group(1))  # type: ignore[union-attr]
            seen += re.findall(r"\| ([0-9a-f-]{36}) \|", text)
            cursor = re.search(r'next_cursor: "([^"]+)"', text)
            if not cursor:
                assert "next_cursor: null" in text
                break
            args["cursor"] = cursor.group(1)
        detail = await client.call_tool("get_service", {"service": seen[0]})
    assert len(seen) == len(set(seen)) == total
    assert json.loads(_text(detail).split("\n", 1)[1]) == detail.structured_content, "the text holds every field"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({"stauts": ["failed"]}, "Unknown argument 'stauts'; did you mean 'status'?"),
        ({"status": ["faild"]}, "Did you mean 'failed'?"),
        ({"limit": 500}, "Argument 'limit' must be at most 200"),
        ({"limit": "many"}, "Argument 'limit' must be a whole number"),
        ({"sort_by": "size"}, "Allowed: changed, published, name."),
        ({"name": "x" * 70_000}, "Argument 'name' is 70,000 characters long; at most 200"),
        ({"target": "nowhere"}, "Unknown target 'nowhere'. Configured targets: default."),
    ],
)
async def test_argument_mistakes_are_one_or_two_sentences(
    emulator_server: EmulatorServer, control: Control, args: dict, expected: str
) -> None:
    async with Client(server_for(emulator_server)) as client:
        result = await client.call_tool("list_services", args)
    text = _text(result)
    assert result.is_error and expected in text, text
    assert "pydantic" not in text and "http" not in text and "Error executing tool" not in text
    assert len(text) < 400, "quotes a short prefix at most"


async def test_small_slips_are_forgiven(emulator_server: EmulatorServer, control: Control) -> None:
    row = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)["services"][0]
    control.set_status(row["service_id"], "failed", "boom")
    async with Client(server_for(emulator_server)) as client:
        one = await client.call_tool("list_services", {"status": "FAILED", "infer_type": "Real-Time"})
        exact = await client.call_tool("list_services", {"status": ["failed"], "infer_type": "real-time"})
        sort = await client.call_tool("list_services", {"sort_by": "NAME", "order": "ASC", "target": "default"})
    assert not one.is_error and one.structured_content == exact.structured_content
    assert one.structured_content["total"] >= 1  # type: ignore[index]
    names = [r["service_name"] for r in sort.structured_content["services"]]  # type: ignore[index]
    assert not sort.is_error and names == sorted(names, key=str.lower)


async def test_a_huge_service_argument_is_refused_with_a_short_quote(
    emulator_server: EmulatorServer, control: Control
) -> None:
    async with Client(server_for(emulator_server)) as client:
        result = await client.call_tool("get_service", {"service": "s" * 65_000})
    assert result.is_error and "at most 200" in _text(result) and len(_text(result)) < 300


async def test_unknown_tools_and_prompts_are_invalid_params(emulator_server: EmulatorServer, control: Control) -> None:
    """The SDK answers an unknown tool with a tool result and an unknown prompt with code 0 (or -32603 on
    2026-07-28); ours are -32602. This fails if an SDK upgrade bypasses the overrides in tools.server."""
    from mcp.shared.exceptions import MCPError

    async with (
        Client(server_for(emulator_server), mode="legacy") as legacy,
        Client(server_for(emulator_server)) as modern,
    ):
        assert modern.protocol_version == "2026-07-28" and legacy.protocol_version == "2025-11-25"
        for client in (legacy, modern):
            for call in (
                client.call_tool("list_servics", {}),
                client.get_prompt("no_such_prompt", {}),
                client.get_prompt("triage_unhealthy_services", {"workspace": "0"}),
                client.get_prompt("triage_unhealthy_services", {"workspace_id": "w" * 500}),
            ):
                with pytest.raises(MCPError) as caught:
                    await call
                assert caught.value.error.code == -32602, caught.value.error
        with pytest.raises(MCPError) as caught:
            await modern.call_tool("list_servics", {})
    assert "Did you mean 'list_services'?" in caught.value.error.message


async def test_without_a_watcher_no_subscriptions_are_offered(
    emulator_server: EmulatorServer, control: Control
) -> None:
    async with Client(server_for(emulator_server)) as modern, Client(server_for(emulator_server), mode="legacy") as old:
        for client in (modern, old):
            resources = client.server_capabilities.resources
            assert resources is not None and not resources.subscribe and not resources.list_changed
        assert modern.protocol_version == "2026-07-28"


async def test_list_targets_says_what_exists_and_whether_it_answers(
    emulator_server: EmulatorServer, control: Control
) -> None:
    async with Client(server_for(emulator_server)) as client:
        up = await client.call_tool("list_targets", {})
        control.faults(error_status=503, error_count=1000)
        down = await client.call_tool("list_targets", {})
    (row,) = up.structured_content["targets"]  # type: ignore[index]
    assert row["name"] == "default" and row["project_id"] == emulator_server.settings.project_id and row["reachable"]
    assert "default" in _text(up) and "reachable: 1" in _text(up)
    (row,) = down.structured_content["targets"]  # type: ignore[index]
    assert not row["reachable"] and row["problem"] and "default is not reachable" in _text(down)


async def test_list_transitions_pages_with_a_total_and_a_cursor(
    emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    from contextlib import asynccontextmanager

    db = tmp_path / "store.db"
    seen = [
        Transition(
            target="default",
            service_id=f"svc-{i}",
            service_name=f"svc-{i}",
            kind="changed",
            from_status="running",
            to_status="failed",
            transition_at=datetime.now(UTC),
        )
        for i in range(5)
    ]
    async with Store(db) as store:
        await store.record_poll("default", "p1", [], [], seen, None)
        settings = make_settings(emulator_server)

        @asynccontextmanager
        async def this_store():  # type: ignore[no-untyped-def]
            yield store

        names: list[str] = []
        async with Client(create_mcp_server(lambda: open_queries(settings), open_store=this_store)) as client:
            args: dict = {"limit": 2}
            while True:
                page = (await client.call_tool("list_transitions", args)).structured_content
                assert page and page["total"] == 5
                names += [r["service_name"] for r in page["transitions"]]
                if not page["next_cursor"]:
                    break
                args["cursor"] = page["next_cursor"]
            mixed = await client.call_tool("list_transitions", {"cursor": args["cursor"], "to_status": ["running"]})
    assert sorted(names) == [f"svc-{i}" for i in range(5)] and len(names) == 5
    assert mixed.is_error and "other filters" in _text(mixed)


def test_stdio_answers_lines_that_are_not_json_rpc_and_batches_per_version(
    emulator_server: EmulatorServer, tmp_path: Path
) -> None:
    """The SDK's stdio transport answers a non-JSON-RPC line with nothing at all; ours with -32700/-32600,
    and a batch is run on 2025-03-26 (the one version that has them) and refused on the others."""
    import subprocess

    params = _stdio(emulator_server, tmp_path / "none.db")

    def session(version: str, lines: list[str]) -> tuple[list, str]:
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}  # fmt: skip
        wire = [json.dumps(init), '{"jsonrpc":"2.0","method":"notifications/initialized"}', *lines]
        done = subprocess.run(
            [params.command, *params.args], input="\n".join(wire) + "\n", env=params.env, capture_output=True,
            text=True, timeout=60, cwd="/",
        )  # fmt: skip
        return [json.loads(line) for line in done.stdout.splitlines()[1:]], done.stderr

    batch = (
        '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"nope":1},{"jsonrpc":"2.0","id":2,"method":"prompts/list"}]'
    )
    old, stderr = session("2025-03-26", ["this is not json", '{"jsonrpc":"2.0","id":7}', batch])
    assert old[0]["error"]["code"] == -32700 and old[0]["id"] is None
    assert old[1]["error"]["code"] == -32600 and old[1]["id"] == 7
    answers = {a["id"]: a for a in old[2]}
    assert set(answers) == {None, 1, 2} and answers[None]["error"]["code"] == -32600
    assert answers[1]["result"]["tools"] and answers[2]["result"]["prompts"]
    new, stderr_new = session("2025-11-25", [batch])
    assert new[0]["error"]["code"] == -32600 and "2025-03-26" in new[0]["error"]["message"]
    assert "Traceback" not in stderr + stderr_new


async def test_http_answers_bodies_that_are_not_json_rpc_and_batches_per_version(
    emulator_server: EmulatorServer, control: Control
) -> None:
    import asyncio
    import socket

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = _mcp_http_process(emulator_server, port)
    url = f"http://127.0.0.1:{port}/mcp"
    accept = {"Accept": "application/json, text/event-stream"}
    hello = {"protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": hello}
    try:
        async with httpx.AsyncClient(headers=accept, timeout=30) as http:
            for _ in range(100):
                try:
                    opened = await http.post(url, json=init)
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            session = {"Mcp-Session-Id": opened.headers["mcp-session-id"]}
            await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
            not_rpc = await http.post(url, json={"foo": 1}, headers=session)
            assert not_rpc.status_code == 400 and not_rpc.json()["error"]["code"] == -32600
            assert "pydantic" not in not_rpc.text
            batch = [
                {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                {"jsonrpc": "2.0", "id": 2, "method": "prompts/list"},
            ]
            answered = await http.post(url, json=batch, headers=session)  # 2025-03-26 sends no version header
            assert answered.status_code == 200
            assert sorted(a["id"] for a in answered.json()) == [1, 2] and all("result" in a for a in answered.json())
            refused = await http.post(url, json=batch, headers={**session, "MCP-Protocol-Version": "2025-06-18"})
            assert refused.status_code == 400 and refused.json()["error"]["code"] == -32600
    finally:
        proc.terminate()
        _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr


def test_stdio_answers_every_request_sent_before_the_client_closes_stdin(
    emulator_server: EmulatorServer, control: Control, tmp_path: Path
) -> None:
    """`printf … | services-bot mcp` (and a client that writes its requests, closes its end and reads): the SDK
    cancels what is still running at end of input, so a tool call slower than the pipe was never answered.
    Every request that arrived is answered before the server exits; one the client cancelled is not waited for."""
    import subprocess
    import time

    control.faults(latency_ms=400)
    params = _stdio(emulator_server, tmp_path / "none.db")
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "pipe", "version": "0"}}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    wire = [
        json.dumps(init),
        '{"jsonrpc":"2.0","method":"notifications/initialized"}',
        '{"jsonrpc":"2.0","id":2,"method":"tools/list"}',
        '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"summarize_services","arguments":{}}}',
        '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_services","arguments":{"limit":3}}}',
        '{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"summarize_services","arguments":{}}}',
        '{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":5}}',
    ]
    started = time.monotonic()
    done = subprocess.run(
        [params.command, *params.args], input="\n".join(wire) + "\n", env=params.env, capture_output=True,
        text=True, timeout=60, cwd="/",
    )  # fmt: skip
    took = time.monotonic() - started
    answers = {m["id"]: m for m in map(json.loads, done.stdout.splitlines()) if "id" in m}
    assert {1, 2, 3, 4} <= set(answers), f"unanswered: {sorted({1, 2, 3, 4} - set(answers))}\n{done.stderr[-2000:]}"
    assert answers[3]["result"]["structuredContent"]["total"] > 0
    assert len(answers[4]["result"]["structuredContent"]["services"]) == 3
    assert done.returncode == 0 and took < 30, (done.returncode, took)
    assert "Traceback" not in done.stderr
