"""The only place that turns settings into credentials, clients and the query layer.

Surfaces (CLI, Slack, MCP) receive a ready ``ServiceQueries``; none of them builds a client itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from services_bot.core.access import Access
from services_bot.core.auth import AkSkSigner, Credentials, IamPasswordToken, StaticToken
from services_bot.core.client import ModelArtsClient
from services_bot.core.client_v2 import ModelArtsV2Client
from services_bot.core.config import Settings, Target
from services_bot.core.generations import TargetClient
from services_bot.core.query import ServiceQueries
from services_bot.core.retry import RetryPolicy
from services_bot.core.store import Store
from services_bot.core.version import USER_AGENT


def local_settings(url: str, project_id: str, token: str, **overrides: object) -> Settings:
    """Settings aimed at one local endpoint (the emulator) with a static token, ignoring every credential and
    target in the environment: two credentials at once would be refused, and a demo must not touch a cloud."""
    fields: dict[str, object] = {
        "modelarts_endpoint": url,
        "modelarts_project_id": project_id,
        "modelarts_auth_token": token,
        "modelarts_region": None,
        "modelarts_workspace_id": None,
        "huaweicloud_sdk_ak": None,
        "huaweicloud_sdk_sk": None,
        "huaweicloud_sdk_security_token": None,
        "huaweicloud_iam_username": None,
        "huaweicloud_iam_password": None,
        "huaweicloud_iam_domain": None,
        "huaweicloud_iam_endpoint": None,
        "services_bot_config": None,
        **overrides,
    }
    return Settings(_env_file=None, **fields)  # type: ignore[arg-type, call-arg]


def access_of(settings: Settings) -> Access:
    """Who sees which targets (channels, MCP tokens) and who administers; bad ids raise ``ConfigError`` at start."""
    token = settings.services_bot_mcp_token.get_secret_value() if settings.services_bot_mcp_token else None
    return Access(
        settings.targets(),
        channel_default=settings.services_bot_channel_default,
        admins=settings.admin_ids(),
        mcp_token=token,
    )


def credentials_for(settings: Settings, target: Target, http: httpx.AsyncClient) -> Credentials:
    mode = settings.auth_mode()
    if mode == "token":
        assert settings.modelarts_auth_token is not None
        return StaticToken(settings.modelarts_auth_token)
    if mode == "aksk":
        assert settings.huaweicloud_sdk_ak is not None and settings.huaweicloud_sdk_sk is not None
        return AkSkSigner(
            settings.huaweicloud_sdk_ak, settings.huaweicloud_sdk_sk, settings.huaweicloud_sdk_security_token
        )
    assert settings.huaweicloud_iam_username and settings.huaweicloud_iam_password and settings.huaweicloud_iam_domain
    return IamPasswordToken(
        http,
        settings.iam_endpoint(target),
        settings.huaweicloud_iam_username,
        settings.huaweicloud_iam_password,
        settings.huaweicloud_iam_domain,
        timeout=settings.services_bot_timeout_seconds,
    )


@asynccontextmanager
async def open_queries(settings: Settings, *, every_field: bool = False) -> AsyncIterator[ServiceQueries]:
    """Build everything from settings and close the HTTP pool on exit. Config errors raise before I/O.
    ``every_field``: listed services keep every field the API sent (``ask --json``), at twice the reading cost."""
    targets = settings.targets()
    settings.auth_mode()
    concurrency = settings.services_bot_concurrency
    limits = httpx.Limits(max_connections=concurrency * len(targets) + 4, max_keepalive_connections=concurrency * 2)
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(settings.services_bot_timeout_seconds),
        limits=limits,
        headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
    ) as http:
        retry = RetryPolicy(
            max_retries=settings.services_bot_max_retries,
            base_seconds=settings.services_bot_retry_base_seconds,
            budget_seconds=settings.services_bot_retry_budget_seconds,
        )
        clients = [target_client(settings, target, http, retry) for target in targets]
        yield ServiceQueries(clients, cache_seconds=settings.services_bot_cache_seconds, every_field=every_field)


def target_client(settings: Settings, target: Target, http: httpx.AsyncClient, retry: RetryPolicy) -> TargetClient:
    """The generation clients a target's ``api_generation`` names (v1 first), sharing one set of credentials."""
    credentials = credentials_for(settings, target, http)
    kinds = {"v1": [ModelArtsClient], "v2": [ModelArtsV2Client], "both": [ModelArtsClient, ModelArtsV2Client]}
    generations = [
        kind(
            http,
            target,
            credentials,
            retry=retry,
            page_size=settings.services_bot_page_size,
            concurrency=settings.services_bot_concurrency,
        )
        for kind in kinds[target.api_generation]
    ]
    return TargetClient(target, generations)


@asynccontextmanager
async def open_existing_store(settings: Settings) -> AsyncIterator[Store | None]:
    """The watcher's store if ``serve`` has made one at SERVICES_BOT_DB, else None: ``services-bot mcp`` reads
    transition history from it but must not create an empty store that nothing will ever fill."""
    if not settings.services_bot_db.is_file():
        yield None
        return
    store = Store(settings.services_bot_db, history_days=settings.services_bot_history_days, writable=False)
    async with store:  # a damaged store is refused with the reason and the fix; a read-only one is fine here
        yield store
