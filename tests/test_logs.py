"""What an operator reads in the log: one structured line per event, and the traceback when something crashed."""

from __future__ import annotations

import logging

import pytest

from services_bot.logs import setup_logging


def _crash() -> None:
    raise RuntimeError("store is read-only: /data/services-bot.db")


def test_a_logged_exception_shows_its_type_message_and_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    """`log.exception("watcher poll crashed")` used to print only that line: no type, no message, no place."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    setup_logging()
    try:
        _crash()
    except RuntimeError:
        logging.getLogger("services_bot.watcher").exception("watcher poll crashed", extra={"target": "default"})
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
    err = capfd.readouterr().err
    first, *rest = err.splitlines()
    assert first.endswith("error services_bot.watcher: watcher poll crashed target='default'")
    assert rest[0] == "Traceback (most recent call last):"
    assert any("in _crash" in line for line in rest)
    assert rest[-1] == "RuntimeError: store is read-only: /data/services-bot.db"
