"""What an admin or user reads: manifest.yaml must be valid and minimal, the README must match the code, and
every document's links must work in a fresh clone."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml
from services_bot.core.grammar import USAGE

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "manifest.yaml"
_SKIPPED_DIRS = {"build", "artifacts", "node_modules"}
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


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


def markdown_files() -> list[Path]:
    """Every Markdown file of the checkout, outside hidden folders (.venv, .git) and build output."""
    found: list[Path] = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and not d.endswith(".egg-info") and d not in _SKIPPED_DIRS]
        found += [Path(folder) / name for name in files if name.endswith(".md")]
    return sorted(found)


def relative_links(markdown: str) -> list[str]:
    """Link and image targets outside code, minus web addresses and same-page anchors."""
    targets = _LINK.findall(_CODE.sub("", markdown))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")]


def test_every_relative_link_in_the_docs_resolves_inside_the_repository() -> None:
    """A clone holds nothing beside it: a link to ../shared/ (or any file not committed) is broken there."""
    files = markdown_files()
    assert {ROOT / "README.md", ROOT / "docs" / "architecture.md", ROOT / "docs" / "spec" / "quirks.md"} <= set(files)
    broken = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for target in relative_links(text):
            resolved = (path.parent / target.split("#", 1)[0]).resolve()
            if not resolved.is_relative_to(ROOT) or not resolved.exists():
                broken.append(f"{path.relative_to(ROOT)}: {target}")
        if "../shared" in text:
            broken.append(f"{path.relative_to(ROOT)}: mentions ../shared")
    assert not broken, "links that do not resolve inside the repository:\n" + "\n".join(broken)


def test_the_link_check_sees_links_and_skips_code_and_web_addresses() -> None:
    text = "[a](docs/a.md#x) ![b](img.png) [c](https://example.com) [d](#top) `[e](f.md)`\n```\n[g](h.md)\n```"
    assert relative_links(text) == ["docs/a.md#x", "img.png"]


def _words(command: str) -> list[str]:
    """A shell command's words, without quiet flags and the folder a CI step runs a tool from."""
    command = re.sub(r'"\$[a-z_]+/[^"\s]*/bin/([\w-]+)"', r"\1", command.split("#", 1)[0])
    return [w for w in command.split() if w not in ("--quiet", "-q", ">/dev/null")]


def test_every_tool_install_the_readme_gives_is_one_ci_runs() -> None:
    """The README's pipx and uv lines are commands CI runs as written (CI may add arguments, such as --once)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("### Installing it as a tool", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    documented = [_words(line) for line in section.splitlines() if line.split()[:1] in (["pipx"], ["uv"], ["uvx"])]
    assert [w[0] for w in documented] == ["pipx", "uv", "uvx"]
    ci = [_words(line) for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    for words in documented:
        assert any(line[: len(words)] == words for line in ci), f"CI does not run: {' '.join(words)}"
