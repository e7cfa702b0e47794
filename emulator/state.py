"""Everything one emulator instance holds: the fleet, quirks, faults, tokens, churn and request counters.

One object on ``app.state.emu``, so the API and control modules share it without globals and two emulators
in one process never see each other's state.
"""

from __future__ import annotations

import random
import time
from collections import Counter, deque
from typing import Any

from services_bot.emulator.churn import ChurnEngine
from services_bot.emulator.faults import Faults
from services_bot.emulator.fleet import Fleet, build_fleet
from services_bot.emulator.iam import TokenStore
from services_bot.emulator.quirks import Quirks
from services_bot.emulator.settings import EmulatorSettings

#: routes always counted (zero included); others, such as the v2 ones ("list_v2", "show_v2"), once used
ROUTES = ("list", "show", "legacy", "iam")


class RequestLog:
    """Counters of API and IAM requests (never control requests), with the last 500 kept for inspection."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.total = 0
        self.by_route: Counter[str] = Counter()
        self.log: deque[dict[str, Any]] = deque(maxlen=500)

    def record(
        self,
        route: str,
        method: str,
        path: str,
        query: str,
        status: int,
        user_agent: str | None = None,
        started: float | None = None,
    ) -> None:
        """One answered request; ``started`` is when it arrived (``time.monotonic``), so a test can tell requests
        sent together from requests sent one after the other (``started_s``/``ended_s`` in the log)."""
        self.total += 1
        self.by_route[route] += 1
        ended = time.monotonic()
        self.log.append({
            "method": method, "path": path, "query": query, "status": status, "user_agent": user_agent,
            "started_s": round(ended if started is None else started, 6), "ended_s": round(ended, 6),
        })  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        by_route = {r: self.by_route.get(r, 0) for r in ROUTES}
        by_route.update({r: n for r, n in self.by_route.items() if r not in by_route})
        return {"total": self.total, "by_route": by_route, "log": list(self.log)}


class EmulatorState:
    """The mutable world of one emulator; ``reset`` regenerates it as if freshly started."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.tokens = TokenStore()
        self.requests = RequestLog()
        self.fleet: Fleet = build_fleet(
            settings.services,
            settings.seed,
            settings.project_id,
            settings.workspaces,
            settings.anchor_ms,
            settings.generations,
        )
        self.quirks = Quirks(offset_mode=settings.offset_mode)
        self.faults = Faults()
        self.fault_rng = random.Random(settings.seed + 101)
        self.churn = ChurnEngine(self.fleet, settings.seed, settings.churn)

    def reset(self, fleet: Fleet, seed: int) -> None:
        """Install a freshly generated ``fleet`` (built from ``seed``) and clear faults, quirks, counters,
        churn rate and history back to the settings. Issued tokens stay valid: a client mid-test keeps its
        token."""
        self.fleet = fleet
        self.quirks = Quirks(offset_mode=self.settings.offset_mode)
        self.faults = Faults()
        self.fault_rng = random.Random(seed + 101)
        self.requests.clear()
        self.churn.reset(self.fleet, seed, self.settings.churn)

    def token_ttl(self) -> float:
        ttl = self.faults.token_ttl_seconds
        return self.settings.token_ttl_seconds if ttl is None else ttl
