"""Structured logs: one line per event, ``key=value`` pairs from the record's ``extra``, to stderr.

Nothing secret is ever passed as ``extra`` (tokens, keys and passwords stay in ``SecretStr``); httpx's own request
logging, which prints full URLs, and slack_bolt's, which prints request bodies, stay at WARNING.
"""

from __future__ import annotations

import logging
import sys

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class KeyValueFormatter(logging.Formatter):
    """``time level logger: message key=value ...``, then the traceback of ``log.exception`` (or ``exc_info``)
    and any ``stack_info``: a crash in the log must say what was raised and where, not only that it happened."""

    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v!r}" for k, v in record.__dict__.items() if k not in _STANDARD)
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname.lower()} {record.name}: "
        line = base + record.getMessage() + (f" {extras}" if extras else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


def setup_logging(verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # slack_bolt logs request bodies at INFO (a rejected signature's body, among others): never ours to print
    for noisy in ("httpx", "httpcore", "uvicorn.access", "slack_bolt"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
