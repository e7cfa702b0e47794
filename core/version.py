"""The product's version, read once from the installed distribution's metadata (pyproject is the one source),
and the User-Agent every API and Slack call carries, so the other side's logs say who called and which build."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _installed_version() -> str:
    try:
        return version("services-bot")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


VERSION = _installed_version()
USER_AGENT = f"services-bot/{VERSION}"
