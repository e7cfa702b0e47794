"""``services-bot serve``: one port for Slack, MCP and health; configuration mistakes stop it with one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from services_bot.core.errors import ConfigError
from services_bot.emulator import EmulatorServer
from services_bot.workspace import WorkspaceClient, WorkspaceServer, WorkspaceSettings

from services_bot.serve import BackgroundServe
from tests.conftest import Control, slack_settings


async def test_mcp_is_served_beside_slack_on_the_same_port(slack_bot: BackgroundServe, control: Control) -> None:
    async with Client(streamable_http_client(slack_bot.url + "/mcp", http_client=httpx2.AsyncClient())) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        result = await client.call_tool("summarize_services", {})
    assert {"list_services", "get_service", "summarize_services"} <= tools
    assert not result.is_error and result.structured_content and result.structured_content["total"] > 0


async def test_mcp_in_serve_asks_for_the_token_when_one_is_set(
    emulator_server: EmulatorServer, workspace_server: WorkspaceServer, control: Control
) -> None:
    settings = slack_settings(emulator_server, workspace_server, services_bot_mcp_token="serve-mcp-token")
    with BackgroundServe(settings) as bot:
        async with httpx.AsyncClient() as http:
            assert (await http.post(bot.url + "/mcp", json={})).status_code == 401
            assert (await http.get(bot.url + "/healthz")).status_code == 200, "health needs no token"
        authorised = httpx2.AsyncClient(headers={"Authorization": "Bearer serve-mcp-token"})
        async with Client(streamable_http_client(bot.url + "/mcp", http_client=authorised)) as client:
            assert (await client.call_tool("list_services", {"limit": 2})).structured_content


def test_beyond_loopback_without_a_token_refuses_unless_mcp_is_off(
    emulator_server: EmulatorServer, workspace_server: WorkspaceServer
) -> None:
    settings = slack_settings(emulator_server, workspace_server)
    with pytest.raises(ConfigError, match="without a token") as refused:
        BackgroundServe(settings, host="0.0.0.0")
    assert "SERVICES_BOT_MCP_TOKEN" in refused.value.hint and "--no-mcp" in refused.value.hint
    with BackgroundServe(settings, host="0.0.0.0", mcp=False) as bot:
        port = bot.url.rsplit(":", 1)[1]
        assert httpx.post(f"http://127.0.0.1:{port}/mcp", json={}).status_code == 404


def _serve(emulator_server: EmulatorServer, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SLACK_"))}
    clean.update(
        MODELARTS_ENDPOINT=emulator_server.url,
        MODELARTS_PROJECT_ID=emulator_server.settings.project_id,
        MODELARTS_AUTH_TOKEN=emulator_server.settings.token,
        SERVICES_BOT_PORT="0",
        # a store of its own: the default ./services-bot.db in "/" may be another run's
        SERVICES_BOT_DB=str(Path(tempfile.mkdtemp(prefix="serve-test-")) / "store.db"),
    )
    clean.update(env)
    return subprocess.run(
        [sys.executable, "-m", "services_bot.cli", "serve"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        cwd="/",
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "SLACK_BOT_TOKEN is not set"),
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET is not set"),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SERVICES_BOT_ALERT_STATUSES": "faild"},
            "SERVICES_BOT_ALERT_STATUSES: Unknown status 'faild'",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SERVICES_BOT_DB": "/proc/no/store.db"},
            "Cannot open the store /proc/no/store.db",
        ),
    ],
)
def test_missing_slack_settings_are_named(emulator_server: EmulatorServer, env: dict[str, str], expected: str) -> None:
    proc = _serve(emulator_server, **env)
    assert proc.returncode == 2 and expected in proc.stderr and "Traceback" not in proc.stderr


def test_socket_mode_refused_by_slack_stops_with_the_reason(
    emulator_server: EmulatorServer, workspace_server: WorkspaceServer
) -> None:
    """``apps.connections.open`` refuses a wrong app token, as Slack does: serve stops saying so."""
    proc = _serve(
        emulator_server,
        SLACK_BOT_TOKEN=workspace_server.settings.bot_token,
        SLACK_APP_TOKEN="xapp-not-valid",
        SLACK_API_URL=workspace_server.api_url,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Slack refused the Socket Mode connection" in proc.stderr and "SLACK_APP_TOKEN" in proc.stderr
    assert "Traceback" not in proc.stderr and "xapp-not-valid" not in proc.stderr


async def test_a_click_with_a_bad_signature_does_nothing(workspace: WorkspaceClient, control: Control) -> None:
    await workspace.command("limit:2")
    listing = (await workspace.wait_for_messages(lambda m: m, channel="C0GENERAL"))[-1]
    refused = await workspace.click(listing, "page_next", bad_signature=True)
    assert refused["status"] == 401
    after = (await workspace.messages("C0GENERAL"))[-1]
    assert after["blocks"] == listing["blocks"] and not after["replaced"]


async def test_metrics_count_what_users_notice(
    slack_bot: BackgroundServe, workspace: WorkspaceClient, control: Control
) -> None:
    await workspace.command("failed")
    await workspace.wait_for_messages(lambda m: m, channel="C0GENERAL")
    async with Client(streamable_http_client(slack_bot.url + "/mcp", http_client=httpx2.AsyncClient())) as client:
        await client.call_tool("get_service", {"service": "no-such-service-anywhere"})
    async with httpx.AsyncClient() as http:
        response = await http.get(slack_bot.url + "/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'services_bot_slack_answer_seconds_count{kind="command",outcome="ok"}' in text
    assert 'services_bot_api_requests_total{code="200",route="list",target="default"}' in text
    assert 'services_bot_mcp_tool_calls_total{outcome="error",tool="get_service"}' in text
    assert "services_bot_api_request_seconds_bucket" in text


def test_socket_mode_that_cannot_connect_stops_instead_of_hanging(
    emulator_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack accepts the app token but its websocket is unreachable (a firewall): a clear stop, not a hang."""
    import services_bot.serve

    monkeypatch.setattr(services_bot.serve, "SOCKET_CONNECT_SECONDS", 2.0)
    with WorkspaceServer(WorkspaceSettings(socket_url="ws://127.0.0.1:9")) as unreachable:
        settings = slack_settings(
            emulator_server, unreachable, slack_app_token=unreachable.settings.app_token, slack_signing_secret=None
        )
        with pytest.raises(ConfigError, match="websocket could not be reached"):
            BackgroundServe(settings, watch=False).start()


def test_mcp_beyond_loopback_answers_loopback_and_configured_hosts_only(
    emulator_server: EmulatorServer, workspace_server: WorkspaceServer
) -> None:
    """With `--host 0.0.0.0` (the image's default) only a Host of `0.0.0.0:port` used to be admitted: every real
    client, `127.0.0.1:port` included, got 421."""
    settings = slack_settings(
        emulator_server,
        workspace_server,
        services_bot_mcp_token="mcp-token-for-hosts",
        services_bot_mcp_allowed_hosts="bot.internal, 10.1.2.3:8443",
    )
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
    with BackgroundServe(settings, host="0.0.0.0") as bot:
        port = bot.url.rsplit(":", 1)[1]

        def status(host_header: str) -> int:
            headers = {
                "Host": host_header,
                "Authorization": "Bearer mcp-token-for-hosts",
                "Accept": "application/json, text/event-stream",
            }
            return httpx.post(f"http://127.0.0.1:{port}/mcp", json=initialize, headers=headers, timeout=10).status_code

        admitted = (f"127.0.0.1:{port}", f"localhost:{port}", f"bot.internal:{port}", "bot.internal", "10.1.2.3:8443")
        for host in admitted:
            assert status(host) == 200, host
        for refused in (f"evil.example:{port}", "10.1.2.3:9999", f"0.0.0.0.evil.example:{port}"):
            assert status(refused) == 421, refused


def test_a_malformed_allowed_host_is_refused_at_start(
    emulator_server: EmulatorServer, workspace_server: WorkspaceServer
) -> None:
    settings = slack_settings(
        emulator_server, workspace_server, services_bot_mcp_token="t", services_bot_mcp_allowed_hosts="https://bot/"
    )
    with pytest.raises(ConfigError, match="SERVICES_BOT_MCP_ALLOWED_HOSTS") as refused:
        BackgroundServe(settings, host="0.0.0.0")
    assert "bot.internal" in refused.value.hint
