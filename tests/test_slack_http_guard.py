"""`POST /slack/events` bounds what an unauthenticated request can cost: body size, signature before parsing,
no replays, no bodies in the log; against `serve` over loopback."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from services_bot.workspace import WorkspaceServer
from slack_sdk.signature import SignatureVerifier

from services_bot.serve import BackgroundServe
from tests.conftest import Control

MARKER = "ZZ-BODY-MARKER-ZZ"


def signed_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": SignatureVerifier(secret).generate_signature(timestamp=ts, body=body.decode()) or "",
    }


def command_body(text: str) -> bytes:
    return urlencode(
        {
            "command": "/services",
            "text": text,
            "user_id": "U0DEMO",
            "channel_id": "C0GENERAL",
            "team_id": "T0DEMO",
            "response_url": "http://127.0.0.1:9/none",
            "trigger_id": "1.2.3",
        }
    ).encode()


def test_an_oversized_body_is_refused_with_413_before_it_is_read(slack_bot: BackgroundServe, control: Control) -> None:
    """A 5 MB unsigned body used to be read and parsed in full, then answered 401 (100 MB took 268 MB of RSS)."""
    control.clear_requests()
    declared = httpx.post(f"{slack_bot.url}/slack/events", content=b"a=" + b"x" * 5_000_000, timeout=30)

    def chunks() -> Iterator[bytes]:
        for _ in range(3):
            yield b"y" * 1_000_000

    streamed = httpx.post(f"{slack_bot.url}/slack/events", content=chunks(), timeout=30)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert "bytes" in response.json()["error"]
    assert not any(control.requests()["by_route"].values())


def test_an_unsigned_body_is_refused_without_a_traceback_or_the_body_in_the_log(
    slack_bot: BackgroundServe, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = command_body(f"failed {MARKER}" + "q" * 100_000)
    unsigned = httpx.post(f"{slack_bot.url}/slack/events", content=body, timeout=30)
    forged = httpx.post(
        f"{slack_bot.url}/slack/events", content=body, headers=signed_headers("not-the-secret", body), timeout=30
    )
    assert unsigned.status_code == forged.status_code == 401
    assert unsigned.json() == {"error": "the request is not signed"}
    logged = caplog.text
    assert MARKER not in logged, "a request body reached the log"
    assert "Traceback" not in logged


def test_a_signed_request_replayed_within_the_window_is_refused(
    slack_bot: BackgroundServe, workspace_server: WorkspaceServer
) -> None:
    body = command_body("help")
    headers = signed_headers(workspace_server.settings.signing_secret, body)
    first = httpx.post(f"{slack_bot.url}/slack/events", content=body, headers=headers, timeout=30)
    again = httpx.post(f"{slack_bot.url}/slack/events", content=body, headers=headers, timeout=30)
    assert first.status_code == 200 and "help" in first.text.lower()
    assert again.status_code == 401 and "replayed" in again.json()["error"]
    stale = httpx.post(
        f"{slack_bot.url}/slack/events",
        content=body,
        headers=signed_headers(workspace_server.settings.signing_secret, body, timestamp=1_700_000_000),
        timeout=30,
    )
    assert stale.status_code == 401 and "5 minutes" in stale.json()["error"]
