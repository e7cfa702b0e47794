"""``services-bot serve``: Slack, MCP over HTTP and health on one port, wired from settings in one place.

One ASGI app (Starlette): ``POST /slack/events`` (HTTP mode; ``bot.http_guard`` bounds the body, verifies the
signature and refuses replays before bolt, which verifies again, parses anything; each request counts itself in
flight until acked, and answers start after, ``bot.acks_first``), ``/mcp``
(Streamable HTTP, guarded as ``tools.http`` says), ``GET /healthz``. With ``SLACK_APP_TOKEN`` set the Slack
app talks over Socket Mode instead and ``/slack/events`` is not served. The lifespan opens the query layer
once and shares it between Slack and MCP, so both answer from one connection pool and one cache.

One writer per store: the watcher and the delivery worker run only in the process holding the store's lease
(``core.lease``). A second ``serve`` on the same store (a rolling deploy's overlap) stands by: it answers Slack,
MCP and ``/healthz`` (role ``standby``, naming the holder), tries the lease every ``LEASE_RETRY_SECONDS`` and
takes over when the holder is gone. A store that is damaged, read-only or missing stops start-up with the
reason and the fix; its problems while running are in ``/healthz`` (503) and in answers.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiohttp
from mcp.server.subscriptions import InMemorySubscriptionBus
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.internal_utils import get_user_agent
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from services_bot.background import (
    BackgroundServer,
    LifespanServer,
    ListenError,
    listen,
    serve_with_lifespan,
    uvicorn_config,
)
from services_bot.bot.acks_first import AcksFirst
from services_bot.bot.app import create_slack_app
from services_bot.bot.delivery import AlertDelivery
from services_bot.bot.http_guard import Refusal, SlackRequestGuard
from services_bot.bot.notify import ChannelNotifications
from services_bot.bot.permissions import Permissions
from services_bot.core.access import Access
from services_bot.core.config import Settings
from services_bot.core.errors import CannotListenError, ConfigError, QueryError, StoreError
from services_bot.core.lease import StoreLease, lock_path, read_record
from services_bot.core.query import ServiceQueries, parse_statuses
from services_bot.core.read_model import WatcherReadModel
from services_bot.core.service_fields import ConsoleLink, console_links
from services_bot.core.store import Store
from services_bot.core.version import USER_AGENT
from services_bot.core.watcher import Watcher
from services_bot.tools.http import mcp_http_app
from services_bot.tools.server import create_mcp_server, resource_updates
from services_bot.wiring import access_of, open_queries

log = logging.getLogger(__name__)
SOCKET_CONNECT_SECONDS = 15.0
LEASE_RETRY_SECONDS = 1.0
"""How often a standby tries the lease: the bound on a take-over, as the kernel frees it when its holder dies."""
STORE_CHECK_SECONDS = 2.0
"""How often the holder checks that its lock file and its store are still the files it opened."""


@dataclass
class Runtime:
    """What the lifespan opened; the routes read it (health) and tests inspect it."""

    settings: Settings
    slack_mode: str
    queries: ServiceQueries | None = None
    store: Store | None = None
    slack_app: AsyncApp | None = None
    http_handler: AsyncSlackRequestHandler | None = None
    socket: AsyncSocketModeHandler | None = None
    watcher: Watcher | None = None
    delivery: AlertDelivery | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)
    lease: StoreLease | None = None
    role: str = "starting"
    """``holder`` (the watcher and the delivery run here), ``standby`` (waiting for the lease) or ``commands only``
    (``--no-watch``: no lease taken)."""
    watching_since: float | None = None
    holder_at_start: str | None = None

    def stale_after(self) -> float:
        """No successful poll for three intervals (and at least 5 s) means the watcher is stuck or ModelArts is
        unreachable: health turns 503, so an orchestrator restarts or pages."""
        poll = self.settings.services_bot_poll_seconds
        return max(3 * poll, poll + 5)

    async def health(self) -> tuple[int, dict[str, Any]]:
        problems: list[str] = []
        if self.queries is None:
            problems.append("starting")
        slack = self.slack_mode
        if self.slack_mode == "socket":
            connected = self.socket is not None and await self.socket.client.is_connected()
            slack = "socket connected" if connected else "socket disconnected"
            if not connected:
                problems.append("Slack Socket Mode is not connected")
        body: dict[str, Any] = {
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "slack": slack,
            "targets": [c.target.name for c in self.queries.clients] if self.queries else [],
        }
        if self.watcher is not None:
            last = self.watcher.last_success_at
            age = (datetime.now(UTC) - last).total_seconds() if last else None
            body["watcher"] = {"last_poll_age_seconds": round(age, 1) if age is not None else None}
            body["watcher"].update(self.watcher.health())
            watching = time.time() - (self.watching_since or self.started_at)  # a standby's watcher starts late
            if (age if age is not None else watching) > self.stale_after():
                problems.append(f"no successful poll for over {self.stale_after():.0f} s")
        warnings: list[str] = []
        if self.store is not None:
            await self.store.check()
            body["store"] = self.store.health()
            if body["store"]["problem"]:
                problems.append(body["store"]["problem"])
        body["lease"] = await self.lease_health()
        if self.delivery is not None:
            try:
                delivery = await self.delivery.health()
            except Exception as exc:  # the store is unreadable: that is the answer, not a 500
                problems.append(f"delivery state unreadable: {type(exc).__name__}")
            else:
                body["delivery"] = delivery.body
                problems += delivery.problems
                warnings += delivery.warnings
        body["status"] = "unhealthy" if problems else "degraded" if warnings else "ok"
        if problems:
            body["problems"] = problems
        if warnings:
            body["warnings"] = warnings
        return (200 if not problems else 503), body

    async def lease_health(self) -> dict[str, Any]:
        """The role, and who holds the lease: a standby reads the lock file, where the holder wrote itself."""
        if self.lease is None:
            return {"role": self.role}
        record = self.lease.read() if self.lease.held else await asyncio.to_thread(self.lease.read)
        return {"role": self.role, "holder": record.holder, "since": record.since, "lock": str(self.lease.path)}

    def role_line(self) -> str:
        """The role, for the line ``serve`` prints once it is up."""
        if self.role == "standby" and self.lease is not None:
            holder = self.holder_at_start or "another process"
            return f"standby: the watcher runs in {holder}, which holds {self.lease.path}"
        return "watcher on" if self.role == "holder" else "no watcher"


def slack_mode(settings: Settings) -> str:
    """``socket`` with an app token, ``http`` with a signing secret; neither is a configuration error."""
    if not settings.slack_bot_token:
        raise ConfigError("SLACK_BOT_TOKEN is not set.", hint="Set the bot token (xoxb-…) from the Slack app page.")
    if settings.slack_app_token:
        return "socket"
    if not settings.slack_signing_secret:
        raise ConfigError(
            "SLACK_SIGNING_SECRET is not set, so Slack's requests could not be verified.",
            hint="Set it from the app's Basic Information page, or set SLACK_APP_TOKEN to use Socket Mode.",
        )
    return "http"


def alert_statuses(settings: Settings) -> frozenset[str]:
    try:
        return parse_statuses(settings.services_bot_alert_statuses.split(","))
    except QueryError as exc:
        raise ConfigError(f"SERVICES_BOT_ALERT_STATUSES: {exc.message}", hint=exc.hint) from None


def create_serve_app(settings: Settings, *, mcp: bool = True, watch: bool = True, host: str | None = None) -> Starlette:
    """Check the configuration (raising ``ConfigError`` before any I/O) and build the one ASGI app.

    ``watch=False`` answers commands only: no watcher, no alerts (the store still serves watch/history).
    """
    host = host or settings.services_bot_host
    mode = slack_mode(settings)
    settings.targets()
    settings.auth_mode()
    statuses = alert_statuses(settings)
    runtime = Runtime(settings=settings, slack_mode=mode)
    access = access_of(settings)
    bus = InMemorySubscriptionBus()
    mcp_server = (
        create_mcp_server(
            lambda: nullcontext(runtime.queries), open_store=lambda: nullcontext(runtime.store), bus=bus
        )
        if mcp
        else None
    )
    mcp_app = (
        mcp_http_app(
            mcp_server,
            host=host,
            token=settings.services_bot_mcp_token,
            allowed=settings.services_bot_mcp_allowed_hosts,
            session_idle_seconds=settings.services_bot_mcp_session_idle_seconds,
            access=access,
        )
        if mcp_server
        else None
    )

    guard = (
        SlackRequestGuard(settings.slack_signing_secret.get_secret_value())
        if mode == "http" and settings.slack_signing_secret
        else None
    )

    acks = AcksFirst()

    async def slack_events(request: Request) -> Response:
        if runtime.http_handler is None or guard is None:
            return JSONResponse({"error": "Slack is connected over Socket Mode here"}, status_code=404)
        with acks.acking():
            checked = await guard.check(request)
            if isinstance(checked, Refusal):
                log.info("refused a /slack/events request", extra={"status": checked.status, "why": checked.reason})
                return JSONResponse({"error": checked.reason}, status_code=checked.status)
            return await runtime.http_handler.handle(checked)

    async def healthz(_request: Request) -> Response:
        status, body = await runtime.health()
        return JSONResponse(body, status_code=status)

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            runtime.queries = queries = await stack.enter_async_context(open_queries(settings))
            runtime.lease = await _take_lease(settings, stack) if watch else None
            runtime.store = store = await stack.enter_async_context(_open_store(settings, runtime.lease, access))
            await store.ensure_default_subscription(settings.services_bot_alert_channel, statuses)
            client = slack_web_client(settings)
            permissions = Permissions(access, client)
            links = _console_link(settings, queries)
            runtime.slack_app = create_slack_app(
                queries,
                client=client,
                signing_secret=settings.slack_signing_secret.get_secret_value()
                if mode == "http" and settings.slack_signing_secret
                else None,
                notifications=ChannelNotifications(
                    store, queries, permissions=permissions, client=client, console_link=links
                ),
                permissions=permissions,
                console_host=settings.services_bot_console_host,
                acks=acks,
            )
            if mode == "http":
                runtime.http_handler = AsyncSlackRequestHandler(runtime.slack_app)
            else:
                runtime.socket = await _connect_socket_mode(runtime.slack_app, settings)
                stack.push_async_callback(runtime.socket.close_async)
            if mcp_server is not None:
                await stack.enter_async_context(mcp_server.session_manager.run())
            if watch:
                assert runtime.lease is not None
                runtime.holder_at_start = (await asyncio.to_thread(runtime.lease.read)).holder
                # delivery's own client: slack_sdk's re-sends would post an alert twice after a timeout
                _start_or_stand_by(runtime, store, slack_web_client(settings, sdk_retries=False), bus)
                stack.push_async_callback(_stop, runtime.tasks)
            else:
                runtime.role = "commands only"
            log.info("serving slack=%s mcp=%s role=%s", mode, "on" if mcp_server else "off", runtime.role)
            yield
            log.info("stopping: the watcher, delivery and the store close")

    routes: list[Route | Mount] = [
        Route("/slack/events", slack_events, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]
    if mcp_app is not None:
        routes.append(Mount("/", app=mcp_app))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.runtime = runtime
    return app


def _start_watching(runtime: Runtime, store: Store, client: AsyncWebClient, bus: InMemorySubscriptionBus) -> None:
    settings = runtime.settings
    assert runtime.queries is not None
    runtime.watcher = Watcher(
        runtime.queries.clients,
        store,
        poll_seconds=settings.services_bot_poll_seconds,
        resync_polls=settings.services_bot_resync_polls,
        notify_baseline=settings.services_bot_notify_baseline,
        outage_polls=settings.services_bot_outage_polls,
        alert_channel=settings.services_bot_alert_channel,
    )
    runtime.delivery = AlertDelivery(
        store,
        client,
        group_threshold=settings.services_bot_group_threshold,
        backoff_seconds=settings.services_bot_delivery_backoff_seconds,
        backoff_max_seconds=settings.services_bot_delivery_backoff_max_seconds,
        stale_seconds=settings.services_bot_delivery_stale_seconds,
        late_note_seconds=settings.services_bot_delivery_late_note_seconds,
        alert_channel=settings.services_bot_alert_channel,
        history_per_minute=settings.services_bot_slack_history_per_minute,
        history_page_size=settings.services_bot_slack_history_page_size,
        console_link=_console_link(settings, runtime.queries),
    )
    runtime.watcher.add_listener(runtime.delivery.wake)
    runtime.watcher.add_listener(resource_updates(bus))
    read_model = WatcherReadModel(runtime.watcher, fresh_seconds=settings.services_bot_answer_fresh_seconds)
    runtime.queries.use_read_model(read_model)  # answers stand on the watcher's state
    runtime.tasks += [
        asyncio.create_task(runtime.watcher.run(), name="watcher"),
        asyncio.create_task(runtime.delivery.run(), name="delivery"),
    ]


def _console_link(settings: Settings, queries: ServiceQueries) -> ConsoleLink:
    """Alerts' Open in console links: each target's region, the configured console host."""
    return console_links([c.target for c in queries.clients], settings.services_bot_console_host)


async def _stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


# -- one writer per store ------------------------------------------------------------------------------------


def _start_or_stand_by(runtime: Runtime, store: Store, client: AsyncWebClient, bus: InMemorySubscriptionBus) -> None:
    """Watch if this process holds the lease, else stand by; either way keep an eye on the lease."""
    assert runtime.lease is not None
    if runtime.lease.held:
        _become_holder(runtime, store, client, bus)
    else:
        runtime.role = "standby"
        log.warning(
            "standby: the store %s is held by %s; this process answers commands and takes over the watcher "
            "and the alerts when that one stops",
            store.path, runtime.holder_at_start or "another process",
        )  # fmt: skip
    runtime.tasks.append(asyncio.create_task(_keep_lease(runtime, store, client, bus), name="lease"))


def _become_holder(runtime: Runtime, store: Store, client: AsyncWebClient, bus: InMemorySubscriptionBus) -> None:
    runtime.role = "holder"
    runtime.watching_since = time.time()
    _start_watching(runtime, store, client, bus)


async def _stop_watching(runtime: Runtime) -> None:
    """Stop the watcher and the delivery (an in-flight post is found again by whoever delivers next)."""
    tasks = [t for t in runtime.tasks if t.get_name() in ("watcher", "delivery")]
    for task in tasks:
        runtime.tasks.remove(task)
    if runtime.queries is not None:
        runtime.queries.use_read_model(None)  # a standby answers from live listings
    await _stop(tasks)
    runtime.watcher = runtime.delivery = None


async def _keep_lease(runtime: Runtime, store: Store, client: AsyncWebClient, bus: InMemorySubscriptionBus) -> None:
    """A standby tries the lease every ``LEASE_RETRY_SECONDS``; the holder checks its lock file and its store
    every ``STORE_CHECK_SECONDS``. Runs until cancelled; a failed round is logged and the next one comes."""
    lease = runtime.lease
    assert lease is not None
    while True:
        await asyncio.sleep(STORE_CHECK_SECONDS if lease.held else LEASE_RETRY_SECONDS)
        try:
            if lease.held:
                await _check_holder(runtime, lease, store)
            else:
                await _try_take_over(runtime, lease, store, client, bus)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("lease check failed")


async def _check_holder(runtime: Runtime, lease: StoreLease, store: Store) -> None:
    if not await asyncio.to_thread(lease.still_held):
        log.error("lease lost: its lock file %s was deleted or replaced; stepping down to standby", lease.path)
        await _stop_watching(runtime)
        lease.release()
        runtime.role = "standby"
        return
    if (await store.check()) is not None and store.lost and runtime.watcher is not None:
        log.error("the watcher and the alerts stop: %s", store.problem.message if store.problem else "store lost")
        await _stop_watching(runtime)


async def _try_take_over(
    runtime: Runtime, lease: StoreLease, store: Store, client: AsyncWebClient, bus: InMemorySubscriptionBus
) -> None:
    if (await store.check()) is not None and store.lost:
        return  # never take over a store whose file is gone
    if not await asyncio.to_thread(lease.try_acquire):
        return
    await asyncio.to_thread(lease.record, store.store_id)
    log.warning("took over the lease %s: the watcher and the alerts run in %s now", lease.path, lease.holder_id)
    _become_holder(runtime, store, client, bus)


async def _take_lease(settings: Settings, stack: AsyncExitStack) -> StoreLease:
    """Try the lease once (a standby keeps trying later); released when serve stops, or by the kernel if killed."""
    lease = StoreLease(settings.services_bot_db)
    try:
        await asyncio.to_thread(lease.try_acquire)
    except OSError as exc:
        raise ConfigError(
            f"Cannot open the store {settings.services_bot_db}: its lock file {lease.path} cannot be made "
            f"({exc.strerror or exc}).",
            hint="Point SERVICES_BOT_DB at a writable file (its folder is created if missing).",
        ) from None
    stack.callback(lease.release)
    return lease


@asynccontextmanager
async def _open_store(settings: Settings, lease: StoreLease | None, access: Access) -> AsyncIterator[Store]:
    """Open the store, refusing (a ``ConfigError`` with the reason and the fix) a damaged, read-only or missing
    one. Only the lease holder checks the write-ahead log: a holder elsewhere may be appending to it."""
    db = settings.services_bot_db
    held = lease is not None and lease.held
    record = lease.read() if lease is not None and held else await asyncio.to_thread(read_record, lock_path(db))
    store = Store(
        db,
        history_days=settings.services_bot_history_days,
        expected_id=record.store_id,
        check_wal=held,
        channel_sees=lambda channel, target: access.for_channel(channel).allows(target),
    )
    try:
        await store.open()
    except StoreError as exc:
        raise ConfigError(exc.message, hint=exc.hint) from None
    except (sqlite3.Error, OSError, RuntimeError) as exc:
        raise ConfigError(
            f"Cannot open the store {db}: {exc}.",
            hint="Point SERVICES_BOT_DB at a writable file (its folder is created if missing).",
        ) from None
    try:
        if lease is not None and held:
            await asyncio.to_thread(lease.record, store.store_id)
        yield store
    finally:
        await store.close()


def slack_web_client(settings: Settings, *, sdk_retries: bool = True) -> AsyncWebClient:
    """``sdk_retries=False`` for alert delivery: slack_sdk would re-send a post once after a dropped connection,
    which may post it twice; delivery retries itself, looking the post up first."""
    assert settings.slack_bot_token is not None
    base_url = settings.slack_api_url if settings.slack_api_url.endswith("/") else settings.slack_api_url + "/"
    return AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=base_url,
        timeout=settings.services_bot_slack_timeout_seconds,  # type: ignore[arg-type]  # aiohttp takes a float
        retry_handlers=None if sdk_retries else [],
        headers=_KeepUserAgent({"User-Agent": f"{USER_AGENT} {get_user_agent()}"}),
    )


class _KeepUserAgent(dict[str, str]):
    """Headers whose User-Agent, once set, stays. slack_sdk's client constructor writes its default User-Agent
    into the headers dict it is given, and bolt builds every per-request client from the app client's dict: the
    product's name and version would be overwritten on the first request (``user_agent_prefix`` is not passed on)."""

    def __setitem__(self, key: str, value: str) -> None:
        if key == "User-Agent" and key in self:
            return
        super().__setitem__(key, value)


async def _connect_socket_mode(app: AsyncApp, settings: Settings) -> AsyncSocketModeHandler:
    assert settings.slack_app_token is not None
    token = settings.slack_app_token.get_secret_value()
    try:  # the handler would retry a refused token forever; asking once first turns that into a clear stop
        opened = await app.client.apps_connections_open(app_token=token)
    except SlackApiError as exc:
        error = exc.response.get("error") if exc.response is not None else None
        raise ConfigError(
            f"Slack refused the Socket Mode connection ({error or 'unknown error'}).",
            hint="Check SLACK_APP_TOKEN (xapp-…, with the connections:write scope) and that Socket Mode is on.",
        ) from None
    except (OSError, aiohttp.ClientError, TimeoutError) as exc:
        raise ConfigError(
            f"Slack cannot be reached at {settings.slack_api_url} ({type(exc).__name__}).",
            hint="Check the network path to slack.com (or SLACK_API_URL).",
        ) from None
    handler = AsyncSocketModeHandler(app, token)
    handler.client.wss_uri = opened["url"]  # the URL just issued is good for one connection: use it
    try:  # an unreachable websocket would be retried forever, with start-up never finishing
        await asyncio.wait_for(handler.connect_async(), timeout=SOCKET_CONNECT_SECONDS)
    except TimeoutError:
        await handler.close_async()
        raise ConfigError(
            "Slack accepted SLACK_APP_TOKEN, but its Socket Mode websocket could not be reached.",
            hint="Check that outbound WSS (port 443) to Slack is allowed, directly or through HTTPS_PROXY.",
        ) from None
    return handler


def run_serve(settings: Settings, *, host: str, port: int, mcp: bool, watch: bool) -> None:
    settings = settings.model_copy(update={"services_bot_port": port})
    app = create_serve_app(settings, mcp=mcp, watch=watch, host=host)
    try:
        sock = listen(host, port)
    except ListenError as exc:
        raise CannotListenError(str(exc), hint="Pick another port with --port or SERVICES_BOT_PORT.") from None
    url = f"http://{host}:{sock.getsockname()[1]}"

    def ready() -> None:
        role = app.state.runtime.role_line()
        print(f"services-bot on {url}  (Slack: {slack_mode(settings)}; /healthz, /metrics; {role})", flush=True)

    server = LifespanServer(uvicorn_config(app, lifespan="off"))
    try:
        asyncio.run(serve_with_lifespan(app, sock, server, ready))
    finally:
        sock.close()
    server.reraise_signals()


class BackgroundServe(BackgroundServer):
    """``serve`` in a background thread (tests, benchmarks, the demo); start-up failures reach ``start()``."""

    name = "services-bot serve"

    def __init__(self, settings: Settings, *, host: str = "127.0.0.1", mcp: bool = True, watch: bool = True) -> None:
        self.settings = settings
        super().__init__(
            create_serve_app(settings, mcp=mcp, watch=watch, host=host),
            host=host,
            port=settings.services_bot_port,
            own_lifespan=True,
        )

    @property
    def runtime(self) -> Runtime:
        return self.app.state.runtime  # type: ignore[no-any-return]
