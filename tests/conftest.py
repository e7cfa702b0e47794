"""Shared fixtures: real emulators on loopback ports, and settings that point the product at them.

The emulator runs in a background thread with its own event loop; the product's code under test runs in
pytest's loop and talks to it over real HTTP.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from services_bot.core.client import ModelArtsClient
from services_bot.core.config import Settings
from services_bot.core.query import ServiceQueries
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceClient, WorkspaceServer, WorkspaceSettings

from services_bot.serve import BackgroundServe
from services_bot.wiring import local_settings, open_queries


def make_settings(server: EmulatorServer, **overrides: Any) -> Settings:
    """Settings aimed at ``server`` with its static token, fast retries and no cache, ignoring the environment."""
    fast: dict[str, Any] = {
        "services_bot_retry_base_seconds": 0.01,
        "services_bot_retry_budget_seconds": 5.0,
        "services_bot_timeout_seconds": 5.0,
        "services_bot_cache_seconds": 0.0,
        "services_bot_answer_fresh_seconds": 0.0,  # tests change the fleet and ask at once
    }
    return local_settings(server.url, server.settings.project_id, server.settings.token, **{**fast, **overrides})


@asynccontextmanager
async def queries_for(server: EmulatorServer, **overrides: Any) -> AsyncIterator[ServiceQueries]:
    async with open_queries(make_settings(server, **overrides)) as queries:
        yield queries


def v1_client(queries: ServiceQueries) -> ModelArtsClient:
    """The first target's v1 client itself, for tests of what the v1 client does (paging, probes, auth)."""
    client = queries.clients[0].generation("v1")
    assert client is not None, "the target reads no v1 API"
    return client


class Control:
    """The emulator's /_emulator/ control API, used to set up each scenario."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url + "/_emulator", timeout=30)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        response = self.http.post(path, json=body or {})
        response.raise_for_status()
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> None:
        self.http.delete(path).raise_for_status()

    def reset(self, **body: Any) -> None:
        self.post("/reset", body)

    def faults(self, **body: Any) -> None:
        self.post("/faults", body)

    def quirks(self, **body: Any) -> None:
        self.post("/quirks", body)

    def set_status(self, service_id: str, status: str, error_msg: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"status": status}
        if error_msg is not None:
            body["error_msg"] = error_msg
        return self.post(f"/services/{service_id}/status", body)  # type: ignore[no-any-return]

    def add(self, **body: Any) -> dict[str, Any]:
        response = self.http.post("/services", json=body)
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]

    def requests(self) -> dict[str, Any]:
        return self.get("/requests")  # type: ignore[no-any-return]

    def clear_requests(self) -> None:
        self.delete("/requests")

    def list_raw(self, project_id: str, token: str, **params: Any) -> dict[str, Any]:
        """The emulator's own answer in one page: the oracle that client listings are checked against."""
        response = httpx.get(
            f"{self.url}/v1/{project_id}/services",
            params={"limit": 10_000_000, **params},
            headers={"X-Auth-Token": token},
            timeout=60,
        )
        response.raise_for_status()
        return response.json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[EmulatorServer]:
    """A small fleet shared by most tests; ``control`` resets it before each test that uses it."""
    with EmulatorServer(EmulatorSettings(port=0, services=300, seed=7)) as server:
        yield server


@pytest.fixture
def control(emulator_server: EmulatorServer) -> Iterator[Control]:
    ctl = Control(emulator_server.url)
    ctl.reset(services=300, seed=7)
    yield ctl
    ctl.http.close()


@pytest.fixture(scope="session")
def flat_server() -> Iterator[EmulatorServer]:
    """A fleet with only the default workspace, so the number of listed services is exactly the fleet size."""
    with EmulatorServer(EmulatorSettings(port=0, services=0, seed=3, workspaces=0)) as server:
        yield server


@pytest.fixture
def flat_control(flat_server: EmulatorServer) -> Iterator[Control]:
    ctl = Control(flat_server.url)
    yield ctl
    ctl.http.close()


@pytest.fixture(scope="session")
def workspace_server() -> Iterator[WorkspaceServer]:
    """The local Slack stand-in: it records what the bot posts and sends signed commands and clicks."""
    with WorkspaceServer(WorkspaceSettings()) as server:
        yield server


def slack_settings(emulator: EmulatorServer, workspace: WorkspaceServer, **overrides: Any) -> Settings:
    """``make_settings`` plus the Slack settings that point the bot at the stand-in workspace, and a store of
    its own in a fresh temporary folder (unless ``services_bot_db`` is given)."""
    fields: dict[str, Any] = {
        "slack_bot_token": workspace.settings.bot_token,
        "slack_signing_secret": workspace.settings.signing_secret,
        "slack_app_token": None,
        "slack_api_url": workspace.api_url,
        "services_bot_port": 0,
        "services_bot_alert_channel": None,
        "services_bot_db": Path(tempfile.mkdtemp(prefix="services-bot-test-")) / "store.db",
    }
    return make_settings(emulator, **{**fields, **overrides})


@pytest.fixture(scope="session")
def slack_bot(emulator_server: EmulatorServer, workspace_server: WorkspaceServer) -> Iterator[BackgroundServe]:
    """``services-bot serve`` in HTTP mode against the shared emulator, wired to the stand-in workspace. Its
    watcher is off: other tests reset the shared fleet at will (notification tests run their own bot)."""
    settings = slack_settings(emulator_server, workspace_server, services_bot_max_retries=2)
    with BackgroundServe(settings, watch=False) as bot:
        yield bot


@pytest.fixture
async def workspace(workspace_server: WorkspaceServer, slack_bot: BackgroundServe) -> AsyncIterator[WorkspaceClient]:
    """A clean workspace whose slash commands and clicks go to ``slack_bot``."""
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        await client.set_app_url(slack_bot.url + "/slack/events")
        yield client


@pytest.fixture(scope="module")
def fleet(request: pytest.FixtureRequest) -> Iterator[EmulatorServer]:
    """A small flat fleet (20 services, no churn) of the module's own, for tests that run ``serve`` processes
    against it; a module's ``FLEET_SEED`` picks the seed."""
    seed = getattr(request.module, "FLEET_SEED", 5)
    with EmulatorServer(EmulatorSettings(port=0, services=20, workspaces=0, seed=seed, churn=0)) as server:
        yield server


@pytest.fixture
def fleet_control(fleet: EmulatorServer) -> Iterator[Control]:
    """``fleet`` reset to its 20 services before each test."""
    ctl = Control(fleet.url)
    ctl.reset(services=20, seed=fleet.settings.seed)
    yield ctl
    ctl.http.close()


@pytest.fixture
async def slack(workspace_server: WorkspaceServer) -> AsyncIterator[WorkspaceClient]:
    """A clean Slack stand-in to read what a ``serve`` process posted."""
    async with WorkspaceClient(workspace_server.url) as client:
        await client.reset()
        yield client
