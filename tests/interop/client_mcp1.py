"""The official Python MCP SDK 1.x client against services-bot's MCP server, as tests/test_mcp_interop.py runs it.

Most Python agents today are built on the 1.x SDK (``mcp<2``); the product itself uses 2.x. This runs in a venv
of its own (``tests/interop/py-mcp1``, made by ``.ci/run`` from ``requirements-mcp1.txt``), never in the
product's, and mirrors ``client.mjs``: it lists and calls every tool (the 1.x session itself checks each
structured result against the tool's output schema, and this checks it again with jsonschema to report the
errors), pages through ``list_services`` reading only the text, makes the mistakes a model makes, and prints
one JSON report on stdout for the test to judge.

    python client_mcp1.py stdio <command> [args...]   (the server's environment is this process's)
    python client_mcp1.py http <url>                  (MCP_TOKEN in the environment, when the server wants one)
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from contextlib import AsyncExitStack
from typing import Any

import httpx
import jsonschema
from mcp import ClientSession, McpError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

EXAMPLES: dict[str, dict[str, Any]] = {
    "list_services": {"limit": 5},
    "summarize_services": {},
    "list_transitions": {"since": "1h", "limit": 5},
    "list_targets": {},
}
BY_SERVICE = ("get_service", "get_service_events", "get_service_load")
UUID_CELL = re.compile(r"\| ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}) \|")


def text(result: Any) -> str:
    return "\n".join(c.text for c in result.content if c.type == "text")


async def call(session: ClientSession, name: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        result = await session.call_tool(name, args)
    except McpError as exc:
        return {"code": exc.error.code, "message": exc.error.message}
    return {"isError": bool(result.isError), "text": text(result), "structured": result.structuredContent}


async def drive(session: ClientSession) -> dict[str, Any]:
    init = await session.initialize()
    report: dict[str, Any] = {"capabilities": init.capabilities.model_dump(mode="json", exclude_none=True)}
    tools = (await session.list_tools()).tools
    report["tools"] = {}
    for tool in tools:
        args = EXAMPLES.get(tool.name, {})
        if tool.name in BY_SERVICE:
            first = await session.call_tool("list_services", {"limit": 1})
            args = {"service": first.structuredContent["services"][0]["service_id"]}
        result = await session.call_tool(tool.name, args)  # 1.x raises if the result breaks the output schema
        errors = None
        if tool.outputSchema and not result.isError:
            found = jsonschema.Draft202012Validator(tool.outputSchema).iter_errors(result.structuredContent)
            errors = [f"{list(e.absolute_path)}: {e.message}" for e in found]
        report["tools"][tool.name] = {
            "title": tool.title,
            "hasOutputSchema": bool(tool.outputSchema),
            "isError": bool(result.isError),
            "valid": None if errors is None else not errors,
            "schemaErrors": errors or None,
            "text": text(result)[:2000],
        }

    seen: set[str] = set()
    cursor: str | None = None
    total = pages = 0
    while True:  # a model that reads only the text: the cursor is in it, literally, until the last page
        args: dict[str, Any] = {"limit": 7, "sort_by": "name", **({"cursor": cursor} if cursor else {})}
        page = text(await session.call_tool("list_services", args))
        total = int(re.search(r"total: (\d+) services", page).group(1))  # type: ignore[union-attr]
        match = re.search(r'next_cursor: "([^"]+)"', page)
        cursor = match.group(1) if match else None
        seen.update(UUID_CELL.findall(page))
        pages += 1
        if not cursor or pages >= 100:
            break
    report["paging"] = {"total": total, "seen": len(seen), "pages": pages, "lastCursor": cursor}

    mistakes = {
        "misspelled": await call(session, "list_services", {"stauts": ["failed"]}),
        "capitals": await call(session, "list_services", {"status": "FAILED"}),
        "unknownTool": await call(session, "no_such_tool", {}),
    }
    try:
        await session.get_prompt("no_such_prompt", {})
        mistakes["unknownPrompt"] = {"code": None}
    except McpError as exc:
        mistakes["unknownPrompt"] = {"code": exc.error.code, "message": exc.error.message}
    report["mistakes"] = mistakes
    return report


async def main(mode: str, rest: list[str]) -> dict[str, Any]:
    async with AsyncExitStack() as stack:
        if mode == "stdio":
            server = StdioServerParameters(command=rest[0], args=rest[1:], env=dict(os.environ))
            read, write = await stack.enter_async_context(stdio_client(server))
        else:
            token = os.environ.get("MCP_TOKEN")
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            http = await stack.enter_async_context(httpx.AsyncClient(headers=headers, timeout=60))
            opened = await stack.enter_async_context(streamable_http_client(rest[0], http_client=http))
            read, write, _session_id = opened
        session = await stack.enter_async_context(ClientSession(read, write))
        return await drive(session)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2:]))))
