"""A few seconds of memory for answers that cost API requests, with single-flight fetches.

Listings (``core.query``) and timelines and load (``core.insights``) both keep what they fetched for a few
seconds, and concurrent callers of one key share one fetch instead of each sending their own requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


class TtlCache:
    """Values by key for ``seconds``; concurrent callers of one key share one fetch. ``max_entries`` bounds the
    memory where keys come from user input (the cache is emptied when it would hold more)."""

    def __init__(self, seconds: float, *, max_entries: int | None = None) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[Any, tuple[float, Any]] = {}
        self._inflight: dict[Any, asyncio.Future[Any]] = {}

    async def get(self, key: Any, fetch: Callable[[], Awaitable[Any]]) -> Any:
        entry = self._entries.get(key)
        if entry and time.monotonic() - entry[0] < self.seconds:
            return entry[1]
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        value = await asyncio.shield(task)
        if self.seconds > 0:
            if self.max_entries is not None and len(self._entries) > self.max_entries:
                self._entries.clear()
            self._entries[key] = (time.monotonic(), value)
        return value

    def clear(self) -> None:
        self._entries.clear()
