"""Running the workspace: uvicorn in a background thread (``WorkspaceServer``), like ``EmulatorServer``.

The thread has its own event loop, so the bot under test (in pytest's loop) and the workspace never block
each other, and a session-scoped fixture can share one workspace across tests.
"""

from __future__ import annotations

from services_bot.workspace.app import create_app
from services_bot.workspace.settings import WorkspaceSettings
from services_bot.workspace.state import WorkspaceState
from starlette.applications import Starlette

from services_bot.background import BackgroundServer


class WorkspaceServer(BackgroundServer):
    """The workspace on a loopback port; a context manager, or ``start()``/``stop()``.

    ``url`` (``http://127.0.0.1:PORT``) and ``api_url`` (``url + "/api/"``, the ``base_url`` for slack_sdk's
    clients) are known once ``start()`` returns; with ``port=0`` the OS picks the port.
    """

    name = "workspace"

    def __init__(self, settings: WorkspaceSettings | None = None) -> None:
        self.settings = settings or WorkspaceSettings()
        app: Starlette = create_app(self.settings)
        super().__init__(app, host=self.settings.host, port=self.settings.port)

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    @property
    def state(self) -> WorkspaceState:
        """The live state, for in-process inspection (read it; change it through the control API)."""
        return self.app.state.workspace  # type: ignore[no-any-return]

    def on_bound(self, url: str) -> None:
        self.state.closing = False
        self.state.url = url  # response_urls and permalinks point back here

    def on_stopping(self) -> None:
        self.state.closing = True
