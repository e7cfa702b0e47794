"""How requests prove who they are: a static token, an IAM password token, or AK/SK signing.

Each strategy is applied by the client to every request, just before it is sent (so AK/SK signs the final
URL), and is told when the API answered 401 so an IAM token can be fetched again once. Secrets live in
``SecretStr`` and never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Protocol

import httpx
from pydantic import SecretStr
from services_bot.core.errors import (
    ApiError,
    AuthenticationError,
    MalformedResponseError,
    RateLimitedError,
    ServerError,
    UnavailableError,
)
from services_bot.core.retry import parse_retry_after
from services_bot.core.signing import sign_headers


class Credentials(Protocol):
    async def apply(self, request: httpx.Request, project_id: str) -> None:
        """Add authentication to ``request`` (headers only)."""

    async def refresh_after_401(self, project_id: str) -> bool:
        """Forget what was rejected; True when another attempt may succeed."""


class StaticToken:
    """``MODELARTS_AUTH_TOKEN``: sent as is; a 401 means the operator must get a new one."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    async def apply(self, request: httpx.Request, project_id: str) -> None:
        request.headers["X-Auth-Token"] = self._token.get_secret_value()

    async def refresh_after_401(self, project_id: str) -> bool:
        return False


class AkSkSigner:
    """Signs each request with SDK-HMAC-SHA256 (``core.signing``), its project in a signed ``X-Project-Id``
    as the SDK's ``BasicCredentials`` sends it."""

    def __init__(self, ak: SecretStr, sk: SecretStr, security_token: SecretStr | None = None) -> None:
        self._ak = ak
        self._sk = sk
        self._security_token = security_token

    async def apply(self, request: httpx.Request, project_id: str) -> None:
        body = request.content if request.method not in ("GET", "HEAD") else b""
        request.headers.update(
            sign_headers(
                request.method,
                str(request.url),
                request.headers,
                self._ak.get_secret_value(),
                self._sk.get_secret_value(),
                body=body,
                security_token=self._security_token.get_secret_value() if self._security_token else None,
                project_id=project_id,
            )
        )

    async def refresh_after_401(self, project_id: str) -> bool:
        return False


class IamPasswordToken:
    """Gets a project-scoped token from IAM with a password, caches it, refreshes it before it expires.

    The token is the ``X-Subject-Token`` response header (quirk Q32). One lock per project makes
    concurrent page fetches share one login instead of stampeding IAM.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        iam_endpoint: str,
        username: str,
        password: SecretStr,
        domain: str,
        *,
        refresh_margin_seconds: float = 300.0,
        timeout: float = 10.0,
    ) -> None:
        self._http = http
        self._url = iam_endpoint.rstrip("/") + "/v3/auth/tokens"
        self._username = username
        self._password = password
        self._domain = domain
        self._margin = refresh_margin_seconds
        self._timeout = timeout
        self._tokens: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.logins = 0

    async def apply(self, request: httpx.Request, project_id: str) -> None:
        request.headers["X-Auth-Token"] = await self._token(project_id)

    async def refresh_after_401(self, project_id: str) -> bool:
        self._tokens.pop(project_id, None)
        return True

    async def _token(self, project_id: str) -> str:
        lock = self._locks.setdefault(project_id, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(project_id)
            if cached and cached[1] - self._margin > time.time():
                return cached[0]
            token, expires = await self._login(project_id)
            self._tokens[project_id] = (token, expires)
            return token

    async def _login(self, project_id: str) -> tuple[str, float]:
        body = {
            "auth": {
                "identity": {
                    "methods": ["password"],
                    "password": {
                        "user": {
                            "name": self._username,
                            "password": self._password.get_secret_value(),
                            "domain": {"name": self._domain},
                        }
                    },
                },
                "scope": {"project": {"id": project_id}},
            }
        }
        self.logins += 1
        try:
            response = await self._http.post(self._url, json=body, timeout=self._timeout)
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"Cannot reach IAM at {self._url}: {type(exc).__name__}.",
                hint="Check HUAWEICLOUD_IAM_ENDPOINT and the network.",
            ) from None
        request_id = response.headers.get("X-Request-Id")
        if response.status_code in (400, 401, 403):
            raise AuthenticationError(
                f"IAM refused the login of user '{self._username}' in domain '{self._domain}'"
                f" ({_iam_message(response)}).",
                status=response.status_code,
                request_id=request_id,
                hint="Check HUAWEICLOUD_IAM_USERNAME, HUAWEICLOUD_IAM_PASSWORD and HUAWEICLOUD_IAM_DOMAIN.",
            )
        if response.status_code == 429:
            raise RateLimitedError(
                "IAM is throttling token requests.",
                status=429,
                request_id=request_id,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        if response.status_code >= 500:
            raise ServerError(
                f"IAM answered HTTP {response.status_code} to the token request.",
                status=response.status_code,
                request_id=request_id,
            )
        if response.status_code >= 400:
            raise ApiError(
                f"IAM answered HTTP {response.status_code} to the token request.",
                status=response.status_code,
                request_id=request_id,
            )
        token = response.headers.get("X-Subject-Token")
        if not token:
            raise MalformedResponseError("IAM answered without an X-Subject-Token header.", status=response.status_code)
        return token, _expiry(response)


def _iam_message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}"
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if data.get("error_msg"):
            return str(data["error_msg"])
    return f"HTTP {response.status_code}"


def _expiry(response: httpx.Response) -> float:
    """``token.expires_at`` from the body; 1 h from now when the body does not say (tokens last 24 h)."""
    try:
        expires_at = response.json()["token"]["expires_at"]
        return datetime.fromisoformat(expires_at.replace("Z", "+00:00")).timestamp()
    except (ValueError, KeyError, TypeError, AttributeError):
        return time.time() + 3600.0
