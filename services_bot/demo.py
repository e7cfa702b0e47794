"""``services-bot demo``: the product against a local emulator, with no accounts at all.

For now it starts the emulator with a churning fleet, answers a few commands through the real client
and query layer, and keeps the emulator up so ``services-bot ask`` can be tried against it.
"""

from __future__ import annotations

import asyncio
import time

import emulator
from core.config import Settings
from core.errors import ServicesBotError
from core.query import ServiceQuery
from services_bot.cli import answer
from services_bot.wiring import local_settings, open_queries

DEMO_COMMANDS = ("summary", "unhealthy", "failed limit:5")


async def _show_answers(settings: Settings) -> None:
    async with open_queries(settings) as queries:
        for text in DEMO_COMMANDS:
            print(f"\n$ services-bot ask {text}")
            print(await answer(queries, text, as_json=False))
        failed = await queries.list(ServiceQuery.build(statuses="failed", limit=1))
        if failed.services:
            name = failed.services[0].service_name or failed.services[0].service_id
            print(f"\n$ services-bot ask show {name}")
            try:
                print(await answer(queries, f'show "{name}"', as_json=False))
            except ServicesBotError as exc:
                print(f"error: {exc.user_text()}")


def run_demo(*, port: int, services: int, churn: float, once: bool) -> int:
    # one workspace, so that every service of the fleet is in the default listing (quirk Q29)
    config = emulator.EmulatorSettings(port=port, services=services, churn=churn, workspaces=0)
    with emulator.EmulatorServer(config) as server:
        settings = local_settings(server.url, config.project_id, config.token)
        print(f"Emulated ModelArts API: {server.url}  (project {config.project_id}, {services} services)")
        asyncio.run(_show_answers(settings))
        if once:
            return 0
        print(
            "\nThe emulator keeps running, with services changing state. In another terminal:\n"
            f"  export MODELARTS_ENDPOINT={server.url} MODELARTS_PROJECT_ID={config.project_id} "
            f"MODELARTS_AUTH_TOKEN={config.token}\n"
            "  services-bot ask failed\n"
            "Press Ctrl-C to stop."
        )
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("\nStopped.")
    return 0
