"""Acks before answers on the one event loop: an answer starts only once no Slack request is being acked.

asyncio runs ready work first come, first served, with no priorities. When ten commands land at once, the first
ack hands its answer to a task (``SlackHandlers._later``), and that task's first stretch of work (reading the
watcher's state, filtering, rendering) would run before the requests the loop reads next, making their acks wait
for it. So ``POST /slack/events`` counts itself in flight while it checks and acks a request (``acking``), and an
answer first waits its turn (``turn``): three passes of the loop, in which requests already on the socket are
read and become tasks that count themselves, and then until none is in flight. Slack's 3-second limit is on the ack;
an answer that starts a few milliseconds later is not noticed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from contextlib import contextmanager

LONGEST_WAIT_SECONDS = 0.5
"""The most an answer waits for acks: far below anything a person notices, far above a burst of acks (1 ms each)."""


class AcksFirst:
    """The count of Slack requests being acked, and the wait an answer makes for it to reach zero."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @contextmanager
    def acking(self) -> Iterator[None]:
        """Around the work from a request's arrival to its HTTP answer (the ack)."""
        self._in_flight += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    async def turn(self, longest: float = LONGEST_WAIT_SECONDS) -> None:
        """Return once every request the loop had received when this was called is acked, or after ``longest``
        seconds (requests that keep coming, or one slow to send its body, never starve an answer). Each
        ``sleep(0)`` is one pass of the loop: in the first it polls its sockets and queues the reading of what
        arrived, in the second that reading makes each request a task, in the third those tasks start and count
        themselves."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + longest
        while True:
            for _ in range(3):
                await asyncio.sleep(0)
            left = deadline - loop.time()
            if self._in_flight == 0 or left <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), left)
