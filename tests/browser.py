"""Headless Chromium for browser tests: the system's own binary (Debian's ``chromium``) driven by playwright.

Playwright's bundled browsers are never downloaded (``playwright install`` needs the internet, CI has none);
the test machine's Chromium is launched instead, with a throwaway profile and everything that phones home
turned off. When there is no Chromium or no playwright, ``skip_reason()`` says so, and browser tests skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext

CANDIDATES = ("chromium", "chromium-browser", "google-chrome-stable", "google-chrome")
ARGS = [
    "--no-sandbox",  # CI runs as root in a container, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",  # containers often have a tiny /dev/shm
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
"""Screenshots go here (repo root), for CI to keep and people to look at."""


def chromium_path() -> str | None:
    """``$CHROMIUM_PATH`` if set, else the first Chromium on ``PATH``."""
    explicit = os.environ.get("CHROMIUM_PATH")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def skip_reason() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    if find_spec("playwright") is None:
        return "playwright is not installed (pip install playwright; no `playwright install` needed)"
    if chromium_path() is None:
        return "no Chromium binary found (apt-get install chromium, or set CHROMIUM_PATH)"
    return None


@asynccontextmanager
async def chromium(
    *, width: int = 1280, height: int = 900, env: dict[str, str] | None = None
) -> AsyncIterator[BrowserContext]:
    """A fresh headless Chromium profile (nothing carried between runs); closed, and its profile deleted, after.

    ``env`` is added to this process's environment for the browser (e.g. a ``FONTCONFIG_FILE``)."""
    from playwright.async_api import async_playwright

    executable = chromium_path()
    if executable is None:
        raise RuntimeError(skip_reason() or "no Chromium")
    with tempfile.TemporaryDirectory(prefix="services-bot-chromium-") as profile:
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=ARGS,
                viewport={"width": width, "height": height},
                locale="en-US",
                timezone_id="UTC",
                env={**os.environ, **env} if env else None,
            )
            try:
                yield context
            finally:
                await context.close()


def fontconfig_without_colour_fonts(folder: Path) -> Path:
    """A fontconfig file (for ``FONTCONFIG_FILE``) that is the system's minus every colour font: the fonts of a
    bare Debian without ``fonts-noto-color-emoji``, on a machine that has it."""
    path = folder / "fonts.conf"
    path.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "urn:fontconfig:fonts.dtd">\n<fontconfig>\n'
        '  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n'
        '  <selectfont><rejectfont><pattern><patelt name="color"><bool>true</bool></patelt></pattern></rejectfont>'
        "</selectfont>\n</fontconfig>\n",
        encoding="utf-8",
    )
    return path
