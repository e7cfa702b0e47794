"""What the tools read from: the query layer and, where the watcher keeps one, its store.

Filled by the server's lifespan (``tools.server``), read by each domain of tools; one object so the domain
modules do not import the server that assembles them.
"""

from __future__ import annotations

from dataclasses import dataclass

from services_bot.core.query import ServiceQueries
from services_bot.core.store import Store
from services_bot.tools.http import caller_scope


@dataclass
class ToolState:
    queries: ServiceQueries | None = None
    store: Store | None = None

    @property
    def ready_queries(self) -> ServiceQueries:
        """The query layer as the caller's bearer token may see it (``tools.http.CALLER_SCOPE``): every tool
        reads services through here, so a token bound to one target never sees another's."""
        assert self.queries is not None, "the server's lifespan opens the query layer before any tool runs"
        return self.queries.scoped(caller_scope())
