"""Running the emulator: in a background thread for tests (``EmulatorServer``) or blocking for the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from types import TracebackType

import uvicorn
from services_bot.emulator.app import create_app
from services_bot.emulator.settings import EmulatorSettings
from services_bot.emulator.state import EmulatorState
from starlette.applications import Starlette


def _config(app: Starlette, settings: EmulatorSettings, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        timeout_keep_alive=30,
    )


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket. Created with an explicit ``IPPROTO_TCP`` because asyncio only turns on
    TCP_NODELAY for accepted sockets whose protocol says TCP; without it every response waits ~40 ms for
    Nagle and delayed ACKs."""
    family, type_, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    sock = socket.socket(family, type_, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class EmulatorServer:
    """uvicorn in a daemon thread with its own event loop; a context manager, or ``start()``/``stop()``.

    ``url`` is only known after ``start()`` (with ``port=0`` it carries the port the OS picked). The thread
    keeps the test's own event loop free, so synchronous and asynchronous tests can both use it.
    """

    def __init__(self, settings: EmulatorSettings | None = None, *, log_level: str = "warning") -> None:
        self.settings = settings or EmulatorSettings()
        self.app = create_app(self.settings)
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""

    @property
    def state(self) -> EmulatorState:
        """The emulator's live state (fleet, faults, ...), for in-process inspection."""
        return self.app.state.emu

    def start(self, timeout: float = 15.0) -> EmulatorServer:
        """Bind, serve in the background and return once connections are accepted.

        The socket is bound here, in the caller's thread, so a taken port is a plain ``OSError`` at once
        (wrapped in ``RuntimeError``) rather than a failure inside the server thread.
        """
        if self._thread is not None:
            raise RuntimeError("the emulator is already running")
        host, port = self.settings.host, self.settings.port
        try:
            sock = _listen(host, port)
        except OSError as exc:
            raise RuntimeError(f"the emulator cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
        server = uvicorn.Server(_config(self.app, self.settings, self._log_level))
        failure: list[BaseException] = []

        def serve() -> None:
            try:
                server.run(sockets=[sock])
            except BaseException as exc:  # reported to the starting thread instead
                failure.append(exc)
            finally:
                sock.close()

        thread = threading.Thread(target=serve, name="emulator-uvicorn", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                self._server = self._thread = None
                raise RuntimeError(f"the emulator failed to start: {failure[0] if failure else 'unknown error'}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("the emulator did not start in time")
            time.sleep(0.005)
        bound_port = sock.getsockname()[1]
        shown = host if host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        if ":" in shown:
            shown = f"[{shown}]"
        self.url = f"http://{shown}:{bound_port}"
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():  # pragma: no cover - only if a handler hangs
            server.force_exit = True
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def run(settings: EmulatorSettings | None = None) -> None:
    """Serve until Ctrl-C (blocking); prints where the emulator listens and how to authenticate."""
    settings = settings or EmulatorSettings()
    sock = _listen(settings.host, settings.port)  # an OSError (port in use) before any fleet is generated
    started = time.perf_counter()
    app = create_app(settings)
    took = time.perf_counter() - started
    server = uvicorn.Server(_config(app, settings, "warning"))

    async def serve() -> None:
        serve_task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started and not serve_task.done():  # noqa: ASYNC110 - uvicorn offers no event
            await asyncio.sleep(0.01)
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1]
            host = settings.host if settings.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
            print(f"ModelArts emulator listening on http://{host}:{port}", flush=True)
            print(f"  project id : {settings.project_id}", flush=True)
            print(f"  X-Auth-Token: {settings.token}   (AK {settings.ak})", flush=True)
            print(
                f"  fleet      : {settings.services} services, seed {settings.seed}, churn {settings.churn}/s, "
                f"offset mode {settings.offset_mode}, generations {settings.generations} (generated in {took:.2f}s)",
                flush=True,
            )
            print(f"  controls   : http://{host}:{port}/_emulator/healthz   (Ctrl-C to stop)", flush=True)
        await serve_task

    with sock, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
