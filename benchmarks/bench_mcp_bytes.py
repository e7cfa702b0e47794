"""Benchmark: bytes an agent reads per MCP answer, against the raw API JSON for the same services.

For 10 / 1 000 / 10 000 matching services, `list_services` with its defaults (compact rows, limit 50), with
limit 200, and with detail=full, each counted as the JSON of the whole tool result (text + structured
content) as the MCP client receives it; against the bytes of every API page needed to list the same services.

    python benchmarks/bench_mcp_bytes.py
"""

from __future__ import annotations

import asyncio
import json

import httpx
from mcp import Client
from services_bot.core.config import Settings
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.tools.server import create_mcp_server

from services_bot.wiring import local_settings, open_queries


def raw_bytes(url: str, project: str, token: str) -> int:
    total, offset = 0, 0
    while True:
        response = httpx.get(
            f"{url}/v1/{project}/services", params={"offset": offset, "limit": 1000}, headers={"X-Auth-Token": token}
        )
        total += len(response.content)
        if len(response.json()["services"]) < 1000:
            return total
        offset += 1


async def answer_bytes(settings: Settings, args: dict) -> int:
    async with Client(create_mcp_server(lambda: open_queries(settings))) as client:
        result = await client.call_tool("list_services", args)
    return len(json.dumps(result.model_dump(mode="json", by_alias=True, exclude_none=True)))


def main() -> None:
    print("| matching services | raw API JSON | list_services (default) | limit 200 | detail=full, limit 50 |")
    print("|---:|---:|---:|---:|---:|")
    for size in (10, 1_000, 10_000):
        with EmulatorServer(EmulatorSettings(port=0, services=size, seed=1, workspaces=0)) as server:
            s = server.settings
            settings = local_settings(server.url, s.project_id, s.token)
            raw = raw_bytes(server.url, s.project_id, s.token)
            default = asyncio.run(answer_bytes(settings, {}))
            wide = asyncio.run(answer_bytes(settings, {"limit": 200}))
            full = asyncio.run(answer_bytes(settings, {"detail": "full"}))
        print(f"| {size:,} | {raw:,} B | {default:,} B ({raw / default:.1f}× less) | {wide:,} B | {full:,} B |")


if __name__ == "__main__":
    main()
