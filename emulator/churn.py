"""The services' state machine and the churn that drives it, on demand or in the background.

Transitions (each stamps ``transition_at`` with the real time of the change):

    deploying -> running (progress 100) | failed (with error_msg)
    running   -> concerning | stopping          (batch: -> finished mostly)
    concerning -> running
    stopping  -> stopped
    stopped   -> deploying (a new release) | deleting
    failed    -> deploying (a new release, error_msg cleared) | deleting
    pending, waiting -> deploying
    finished  -> deleting
    deleting  -> gone (the service disappears)
    (nothing) -> deploying (a new service appears)

v2 and both services move through the v2 states instead (``failure_reason`` is set on FAILED and ERROR and
cleared on recovery; ``update_at`` moves on every change; a both service's v1 reading follows):

    DEPLOYING -> RUNNING | FAILED | ERROR          INIT -> DEPLOYING
    RUNNING   -> CONCERNING | STOPPING | UPGRADING | ERROR | INTERRUPTING
    CONCERNING -> RUNNING | ERROR                  UPGRADING -> RUNNING | FAILED
    ERROR     -> RUNNING (recovered) | DEPLOYING | DELETING
    STOPPING, INTERRUPTING -> STOPPED              STOPPED -> DEPLOYING | INIT | DELETING
    FAILED    -> DEPLOYING | DELETING              DELETING -> gone

Picks are random but seeded, so the same seed and the same sequence of calls give the same transitions.
Steady services (running/stopped/finished) are picked less often than services in motion, so watchers see
complete journeys (deploying -> running, stopping -> stopped) rather than only the first step of many.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from typing import Any

from services_bot.emulator.fleet import Fleet, Service, now_ms, shown_status

NEW_SERVICE_PROBABILITY = 0.05
_STEADY = frozenset({"running", "stopped", "finished"})
_COMMON: dict[str, tuple[tuple[str | None, float], ...]] = {
    "deploying": (("running", 8), ("failed", 2)),
    "concerning": (("running", 1),),
    "stopping": (("stopped", 1),),
    "stopped": (("deploying", 7), ("deleting", 3)),
    "failed": (("deploying", 6), ("deleting", 4)),
    "pending": (("deploying", 1),),
    "waiting": (("deploying", 1),),
    "finished": (("deleting", 1),),
    "deleting": ((None, 1),),
}
_V2: dict[str, tuple[tuple[str | None, float], ...]] = {
    "DEPLOYING": (("RUNNING", 7), ("FAILED", 2), ("ERROR", 1)),
    "INIT": (("DEPLOYING", 1),),
    "RUNNING": (("CONCERNING", 4), ("STOPPING", 3), ("UPGRADING", 2), ("ERROR", 1), ("INTERRUPTING", 0.5)),
    "CONCERNING": (("RUNNING", 4), ("ERROR", 1)),
    "UPGRADING": (("RUNNING", 8), ("FAILED", 1)),
    "ERROR": (("RUNNING", 5), ("DEPLOYING", 3), ("DELETING", 2)),
    "STOPPING": (("STOPPED", 1),),
    "INTERRUPTING": (("STOPPED", 1),),
    "STOPPED": (("DEPLOYING", 6), ("INIT", 1), ("DELETING", 3)),
    "FAILED": (("DEPLOYING", 6), ("DELETING", 4)),
    "DELETING": ((None, 1),),
}
_V2_REDEPLOY_FROM = frozenset({"STOPPED", "FAILED", "ERROR"})
_RUNNING = {
    "batch": (("finished", 7), ("stopping", 2), ("concerning", 1)),
    "real-time": (("concerning", 5), ("stopping", 4)),
    "edge": (("concerning", 5), ("stopping", 4)),
}


def options(s: Service) -> tuple[tuple[str | None, float], ...]:
    """The weighted next statuses of ``s`` in its own vocabulary (None = the service goes away); empty for
    unknown statuses."""
    if s.generation != "v1":
        return _V2.get(s.v2_status or "", ())
    if s.status == "running":
        return _RUNNING.get(s.infer_type, _RUNNING["real-time"])
    return _COMMON.get(s.status, ())


def _choose(rng: random.Random, opts: tuple[tuple[str | None, float], ...]) -> str | None:
    total = sum(w for _, w in opts)
    x = rng.random() * total
    for status, w in opts:
        x -= w
        if x < 0:
            return status
    return opts[-1][0]


class ChurnEngine:
    """Applies state-machine transitions to a fleet: ``step`` now, or ``run`` at ``rate`` per second."""

    def __init__(self, fleet: Fleet, seed: int, rate: float) -> None:
        self._wake: asyncio.Event | None = None
        self.reset(fleet, seed, rate)

    def reset(self, fleet: Fleet, seed: int, rate: float) -> None:
        self.fleet = fleet
        self.rng = random.Random(seed * 1_000_003 + 17)
        self.timer_rng = random.Random(seed * 1_000_003 + 29)
        self.rate = rate
        self.history: deque[dict[str, Any]] = deque(maxlen=1000)
        self.wake()

    def set_rate(self, rate: float) -> None:
        self.rate = rate
        self.wake()

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def record(self, s: Service, from_status: str | None, to_status: str | None, at: int) -> dict[str, Any]:
        """Remember a transition (churn's own, or one made through the control API) in ``history``.

        Statuses are in the service's own vocabulary (v2's for v2 and both services). A v2 or both service's
        record carries ``generation``; a v1 one keeps its original shape, so no ``generation`` means v1.
        """
        t: dict[str, Any] = {
            "service_id": s.service_id,
            "service_name": s.service_name,
            "from_status": from_status,
            "to_status": to_status,
            "transition_at": at,
        }
        if s.generation != "v1":
            t["generation"] = s.generation
        self.history.append(t)
        return t

    def step(self, at: int | None = None) -> dict[str, Any] | None:
        """Apply one transition; returns its record, or None if nothing in the fleet can move."""
        at = at if at is not None else now_ms()
        r = self.rng
        fleet = self.fleet
        if not fleet.items or r.random() < NEW_SERVICE_PROBABILITY:
            s = fleet.generator.make(status="deploying", fresh_at=at)
            fleet.add(s)
            return self.record(s, None, shown_status(s), at)
        chosen: Service | None = None
        for attempt in range(60):
            s = fleet.items[int(r.random() * len(fleet.items))]
            if not options(s):
                continue
            chosen = s
            if s.status in _STEADY and attempt < 40 and r.random() < 0.7:
                continue
            break
        if chosen is None:
            return None
        s = chosen
        to_status = _choose(r, options(s))
        from_status = shown_status(s)
        if to_status is None:
            fleet.remove(s.service_id)
            return self.record(s, from_status, None, at)
        if from_status.lower() == "running" and to_status.lower() == "concerning":
            s.failed_times += 1 + int(r.random() * 50)
            s.invocation_times += 100 + int(r.random() * 5000)
        if s.generation == "v1":
            redeploy = to_status == "deploying" and from_status in ("stopped", "failed", "finished")
        else:
            redeploy = to_status == "DEPLOYING" and from_status in _V2_REDEPLOY_FROM
        fleet.set_status(s, to_status, at, redeploy=redeploy, rng=r)
        return self.record(s, from_status, to_status, at)

    def steps(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            t = self.step()
            if t is None:
                break
            out.append(t)
        return out

    async def run(self) -> None:
        """Background loop: exponential inter-arrival times at the current rate (woken when it changes)."""
        self._wake = asyncio.Event()
        while True:
            if self.rate <= 0:
                await self._wake.wait()
                self._wake.clear()
                continue
            delay = self.timer_rng.expovariate(self.rate)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
                self._wake.clear()  # the rate changed: draw a new delay
            except TimeoutError:
                self.step()
