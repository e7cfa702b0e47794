"""An alert to failed or concerning names the cause the service's events give when its ``error_msg`` is empty
or says nothing, and links to the service in the console of its target's region: ``serve``'s watcher sees the
change in the emulator, and the alert is read at the Slack stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from services_bot.emulator import EmulatorServer
from services_bot.emulator import events as emulator_events
from services_bot.workspace import WorkspaceClient, WorkspaceServer

from services_bot.serve import BackgroundServe
from tests import test_alert_lifecycle as lifecycle
from tests.conftest import Control, slack_settings
from tests.test_alert_lifecycle import first_alert, shown, wait_polls

# the lifecycle module's fleet, team and stand-in, as fixtures of this module too
fleet, fleet_control, team, slack = lifecycle.fleet, lifecycle.fleet_control, lifecycle.team, lifecycle.slack


@pytest.fixture
def bot(
    fleet: EmulatorServer, fleet_control: Control, team: WorkspaceServer, tmp_path: Path
) -> Iterator[BackgroundServe]:
    """The lifecycle module's bot, with a region on its target (the endpoint still the emulator's)."""
    settings = slack_settings(
        fleet,
        team,
        services_bot_db=tmp_path / "store.db",
        services_bot_poll_seconds=lifecycle.POLL,
        services_bot_alert_channel=lifecycle.ALERTS,
        services_bot_max_retries=0,
        modelarts_region="eu-de",
    )
    with BackgroundServe(settings) as running:
        wait_polls(running)
        yield running


async def test_a_failure_with_an_empty_error_names_the_events_cause(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="silent-failure", status="running")
    wait_polls(bot, 2)
    fleet_control.set_status(created["service_id"], "failed", "")
    detail = fleet_control.get(f"/services/{created['service_id']}")
    assert not detail.get("error_msg"), "the details say nothing"
    alert = await first_alert(slack, "silent-failure")
    text = shown(alert)
    assert "model start failed:" in text
    assert any(cause in text for cause in emulator_events._SILENT_CAUSES)
    links = [e for b in alert["blocks"] for e in b.get("elements", []) if e.get("action_id") == "open_in_console"]
    assert links and links[0]["url"] == (
        "https://console.huaweicloud.com/modelarts/?region=eu-de#/model-deployment/real-time/" + created["service_id"]
    )


async def test_a_concerning_service_alert_says_which_instance_is_not_ready(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="wobbly", status="running")
    wait_polls(bot, 2)
    fleet_control.set_status(created["service_id"], "concerning")
    alert = await first_alert(slack, "wobbly")
    assert "1 instance not ready: health check failed" in shown(alert)


async def test_a_specific_error_is_kept_and_a_failing_events_call_changes_nothing(
    bot: BackgroundServe, fleet_control: Control, slack: WorkspaceClient
) -> None:
    created = fleet_control.add(service_name="loud-failure", status="running")
    wait_polls(bot, 2)
    fleet_control.faults(error_status=500, error_count=10_000, paths=["/events"])
    try:
        fleet_control.set_status(created["service_id"], "failed", "CUDA out of memory")
        alert = await first_alert(slack, "loud-failure")
    finally:
        fleet_control.faults(error_count=0, paths=None)
    assert "CUDA out of memory" in shown(alert) and "model start failed" not in shown(alert)
