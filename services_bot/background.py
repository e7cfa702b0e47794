"""An ASGI app served by uvicorn in a daemon thread with its own event loop: for tests, benchmarks and the demo.

The thread keeps the caller's loop free, so a test's client and the server never block each other. The
socket is bound in the caller's thread so a taken port fails at once, and a start-up failure inside the
thread is re-raised to the caller. Nothing here knows the product: the Slack stand-in uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Generator
from types import TracebackType

import uvicorn
from starlette.applications import Starlette


class ListenError(RuntimeError):
    """The address cannot be listened on; the message names it and why."""


def listen(host: str, port: int) -> socket.socket:
    """A listening socket made with an explicit ``IPPROTO_TCP``: asyncio sets TCP_NODELAY only on sockets whose
    protocol says TCP, and without it small answers wait ~40 ms on Nagle and delayed ACKs."""
    try:
        family, type_, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )[0]
        sock = socket.socket(family, type_, proto)
    except OSError as exc:
        raise ListenError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        raise ListenError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    return sock


def uvicorn_config(app: Starlette, *, lifespan: str = "on", log_level: str = "warning") -> uvicorn.Config:
    return uvicorn.Config(
        app,
        log_level=log_level,
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=3,
        timeout_keep_alive=30,
    )


class LifespanServer(uvicorn.Server):
    """uvicorn's server for an app whose lifespan runs around it (``serve_with_lifespan``). uvicorn catches
    SIGTERM and SIGINT, shuts down, and then raises the signal again as it leaves ``serve()``: with the default
    SIGTERM handler that ends the process there, before the lifespan around it has closed the store, released
    the lease and stopped delivery (``docker stop`` did exactly that). Here the signal is only recorded; the
    caller raises it again once the lifespan has ended (``reraise_signals``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def reraise_signals(self) -> None:
        """What uvicorn does at the end of ``serve()``: the process ends as the signal would have ended it."""
        for captured in reversed(self._captured_signals):
            signal.raise_signal(captured)


async def serve_with_lifespan(
    app: Starlette, sock: socket.socket, server: uvicorn.Server, on_ready: Callable[[], None] | None = None
) -> None:
    """Run the app's lifespan here rather than inside uvicorn, so a start-up failure propagates as the
    exception it is (a ``ConfigError`` reaches the command line as one line) instead of a logged traceback.
    ``on_ready`` runs once the lifespan has started, before connections are served."""
    async with app.router.lifespan_context(app):
        if on_ready is not None:
            on_ready()
        await server.serve(sockets=[sock])


class BackgroundServer:
    """``app`` on ``host:port`` (0 = any free port) in a daemon thread; a context manager, or start()/stop().

    ``own_lifespan`` runs the app's lifespan through ``serve_with_lifespan`` (errors reach ``start()``);
    otherwise uvicorn runs it.
    """

    name = "server"

    def __init__(
        self, app: Starlette, *, host: str = "127.0.0.1", port: int = 0, own_lifespan: bool = False
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.own_lifespan = own_lifespan
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def on_bound(self, url: str) -> None:
        """Called with the URL before serving starts (e.g. so the app can build links back to itself)."""

    def on_stopping(self) -> None:
        """Called before the server is told to stop (e.g. to end long-polls that would hold shutdown up)."""

    def start(self, timeout: float = 20.0) -> BackgroundServer:
        if self._thread is not None:
            raise RuntimeError(f"the {self.name} is already running")
        sock = listen(self.host, self.port)
        shown = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        self.url = f"http://{f'[{shown}]' if ':' in shown else shown}:{sock.getsockname()[1]}"
        self.on_bound(self.url)
        server = uvicorn.Server(uvicorn_config(self.app, lifespan="off" if self.own_lifespan else "on"))
        failure: list[BaseException] = []

        def run() -> None:
            try:
                if self.own_lifespan:
                    asyncio.run(serve_with_lifespan(self.app, sock, server))
                else:
                    server.run(sockets=[sock])
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
            finally:
                sock.close()

        thread = threading.Thread(target=run, name=f"{self.name}-uvicorn", daemon=True)
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive():
                self._server = self._thread = None
                if failure and isinstance(failure[0], Exception):
                    raise failure[0]
                raise RuntimeError(f"the {self.name} stopped during start-up")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"the {self.name} did not start in time")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self.on_stopping()
        server.should_exit = True
        thread.join(timeout=10)
        if thread.is_alive():  # pragma: no cover - only if a handler hangs
            server.force_exit = True
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
