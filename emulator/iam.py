"""A minimal IAM (Keystone v3) password-token endpoint and the store of the tokens it issues.

Only what a ModelArts client needs: ``POST /v3/auth/tokens`` with the password method, the token in the
``X-Subject-Token`` response header (spec Q32), an expiry the tests can shorten or force. The error bodies
follow Keystone's ``{"error": {"code", "message", "title"}}`` shape rather than ModelArts', as IAM does.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services_bot.emulator.settings import EmulatorSettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

DEFAULT_PROJECT_NAME = "cn-north-4"


@dataclass
class IssuedToken:
    """What the emulator remembers about an issued token (never the token in logs)."""

    project_id: str | None
    expires_at: float
    issued_at: float


class TokenStore:
    """Live IAM tokens. Expiry is checked on use, so ``expire_all`` needs no background work."""

    def __init__(self) -> None:
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, project_id: str | None, ttl_seconds: float) -> tuple[str, IssuedToken]:
        now = time.time()
        token = "MIIEmu" + secrets.token_urlsafe(96)
        info = IssuedToken(project_id=project_id, expires_at=now + ttl_seconds, issued_at=now)
        self._tokens[token] = info
        if len(self._tokens) > 10_000:  # forget long-expired tokens so the store cannot grow unbounded
            cutoff = now - 86_400
            self._tokens = {k: v for k, v in self._tokens.items() if v.expires_at > cutoff}
        return token, info

    def lookup(self, token: str) -> IssuedToken | None:
        return self._tokens.get(token)

    def expire_all(self) -> int:
        now = time.time()
        for info in self._tokens.values():
            info.expires_at = min(info.expires_at, now - 1)
        return len(self._tokens)


def stable_id(kind: str, name: str) -> str:
    """A 32-hex id that is the same in every run (``hash()`` is salted per process)."""
    return hashlib.sha256(f"{kind}:{name}".encode()).hexdigest()[:32]


def iso(ts: float) -> str:
    """Keystone's timestamp format, e.g. ``2026-11-24T09:00:00.000000Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iam_error(status: int, message: str) -> JSONResponse:
    titles = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden"}
    return JSONResponse({"error": {"code": status, "message": message, "title": titles.get(status, "Error")}}, status)


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            raise KeyError(".".join(path))
        obj = obj[key]
    return obj


async def issue_token(request: Request, settings: EmulatorSettings, store: TokenStore, ttl: float) -> Response:
    """Handle ``POST /v3/auth/tokens`` (password method, project scope by id or by name)."""
    try:
        body = await request.json()
    except ValueError:
        return iam_error(400, "The request body is not valid JSON.")
    try:
        methods = _dig(body, "auth", "identity", "methods")
        if not isinstance(methods, list) or "password" not in methods:
            return iam_error(400, "Only the 'password' identity method is supported here.")
        user = _dig(body, "auth", "identity", "password", "user")
        name, password = _dig(user, "name"), _dig(user, "password")
        domain = _dig(user, "domain", "name")
    except KeyError as exc:
        return iam_error(400, f"Expecting to find {exc.args[0]} in the request body.")
    if not all(isinstance(v, str) for v in (name, password, domain)):
        return iam_error(400, "User name, password and domain name must be strings.")
    ok = (  # constant-time, and all three compared so timing does not tell which one was wrong
        hmac.compare_digest(name.encode(), settings.iam_user.encode())
        & hmac.compare_digest(password.encode(), settings.iam_password.encode())
        & hmac.compare_digest(domain.encode(), settings.iam_domain.encode())
    )
    if not ok:
        return iam_error(401, "The username or password is wrong.")

    scope = body["auth"].get("scope")
    project: dict[str, Any] | None = None
    if isinstance(scope, dict) and "domain" in scope and "project" not in scope:
        scope = None  # a domain-scoped token: valid, but ModelArts will refuse it (403: not project-scoped)
    if scope is not None:
        p = scope.get("project") if isinstance(scope, dict) else None
        if not isinstance(p, dict) or not (isinstance(p.get("id"), str) or isinstance(p.get("name"), str)):
            return iam_error(400, "Expecting to find scope.project.id or scope.project.name in the request body.")
        if isinstance(p.get("id"), str):
            pid = p["id"]
            pname = DEFAULT_PROJECT_NAME if pid == settings.project_id else f"project-{pid[:8]}"
        else:
            pname = p["name"]
            pid = settings.project_id
        project = {"id": pid, "name": pname}

    token, info = store.issue(project["id"] if project else None, ttl)
    domain_obj = {"id": stable_id("domain", settings.iam_domain), "name": settings.iam_domain}
    out: dict[str, Any] = {
        "expires_at": iso(info.expires_at),
        "issued_at": iso(info.issued_at),
        "methods": ["password"],
        "user": {
            "domain": domain_obj,
            "id": stable_id("user", settings.iam_user),
            "name": settings.iam_user,
            "password_expires_at": "",
        },
        "roles": [{"id": "0", "name": "te_admin"}],
        "catalog": [],
    }
    if project:
        out["project"] = {"domain": domain_obj, "id": project["id"], "name": project["name"]}
    else:
        out["domain"] = domain_obj
    return JSONResponse({"token": out}, 201, headers={"X-Subject-Token": token})
