"""Benchmark: bytes an agent reads per MCP answer, against the raw API JSON for the same services.

For 10 / 1 000 / 10 000 matching services, `list_services` with its defaults (compact rows, limit 50), with
limit 200, and with detail=full, each counted as the JSON of the whole tool result (text + structured
content) as the MCP client receives it, and its text content alone (what a client that hands the model only the
text shows it); against the bytes of every API page needed to list the same services. `get_service` is counted
the same way against the API's detail JSON of that service.

    python benchmarks/bench_mcp_bytes.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
from mcp import Client
from services_bot.core.config import Settings
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.tools.server import create_mcp_server

from services_bot.wiring import local_settings, open_queries


def raw_listing(url: str, project: str, token: str) -> tuple[int, list[dict[str, Any]]]:
    total, offset, rows = 0, 0, []
    while True:
        response = httpx.get(
            f"{url}/v1/{project}/services", params={"offset": offset, "limit": 1000}, headers={"X-Auth-Token": token}
        )
        total += len(response.content)
        page = response.json()["services"]
        rows += page
        if len(page) < 1000:
            return total, rows
        offset += 1


def raw_detail(url: str, project: str, token: str, service_id: str) -> int:
    response = httpx.get(f"{url}/v1/{project}/services/{service_id}", headers={"X-Auth-Token": token})
    return len(response.content)


def sizes(result: Any) -> tuple[int, int]:
    """(whole result as JSON, text content alone) in bytes."""
    whole = len(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True)).encode())
    text = sum(len(getattr(c, "text", "").encode()) for c in result.content)
    return whole, text


async def answers(settings: Settings, service_id: str) -> dict[str, tuple[int, int]]:
    async with Client(create_mcp_server(lambda: open_queries(settings))) as client:
        return {
            "default": sizes(await client.call_tool("list_services", {})),
            "wide": sizes(await client.call_tool("list_services", {"limit": 200})),
            "full": sizes(await client.call_tool("list_services", {"detail": "full"})),
            "get": sizes(await client.call_tool("get_service", {"service": service_id})),
        }


def main() -> None:
    print(
        "| matching services | raw API JSON | list_services (default: compact, limit 50): whole / text | "
        "limit 200: whole / text | detail=full, limit 50 | get_service: whole / text (raw detail JSON) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for size in (10, 1_000, 10_000):
        with EmulatorServer(EmulatorSettings(port=0, services=size, seed=1, workspaces=0)) as server:
            s = server.settings
            settings = local_settings(server.url, s.project_id, s.token)
            raw, rows = raw_listing(server.url, s.project_id, s.token)
            detail = raw_detail(server.url, s.project_id, s.token, rows[0]["service_id"])
            got = asyncio.run(answers(settings, rows[0]["service_id"]))
        (dw, dt), (ww, wt), (fw, _), (gw, gt) = got["default"], got["wide"], got["full"], got["get"]
        print(
            f"| {size:,} | {raw:,} B | {dw:,} B / {dt:,} B ({raw / dw:.1f}× less) | {ww:,} B / {wt:,} B | "
            f"{fw:,} B | {gw:,} B / {gt:,} B ({detail:,} B) |"
        )


if __name__ == "__main__":
    main()
