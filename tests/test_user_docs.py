"""What an admin or user reads: manifest.yaml must be valid and minimal, and the README must match the code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from core.grammar import USAGE

MANIFEST = Path(__file__).resolve().parents[1] / "manifest.yaml"


def load() -> dict[str, Any]:
    return yaml.safe_load(MANIFEST.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_the_command_the_bot_listens_to_is_declared_with_a_usage_hint() -> None:
    manifest = load()
    (command,) = manifest["features"]["slash_commands"]
    assert command["command"] == "/services"
    assert 0 < len(command["description"]) <= 100 and 0 < len(command["usage_hint"]) <= 1000
    assert command["url"].endswith("/slack/events")
    assert "public" in command["usage_hint"] and "public" in USAGE
    assert manifest["display_information"]["name"] and len(manifest["display_information"]["description"]) <= 140


def test_only_the_scopes_the_bot_uses() -> None:
    scopes = load()["oauth_config"]["scopes"]["bot"]
    assert sorted(scopes) == ["channels:history", "chat:write", "commands", "groups:history"]


def test_interactivity_and_socket_mode_are_on_and_http_urls_are_placeholders() -> None:
    settings = load()["settings"]
    assert settings["interactivity"]["is_enabled"] is True
    assert settings["interactivity"]["request_url"] == "https://YOUR-HOST/slack/events"
    assert settings["socket_mode_enabled"] is True
    assert load()["features"]["bot_user"]["display_name"] == "services-bot"


def test_the_readme_configuration_table_is_generated_from_the_settings() -> None:
    from services_bot.settings_doc import END, START, markdown_table

    readme = (MANIFEST.parent / "README.md").read_text(encoding="utf-8")
    current = readme.split(START, 1)[1].split(END, 1)[0].strip()
    assert current == markdown_table(), "run: python -m services_bot.settings_doc --write README.md"
