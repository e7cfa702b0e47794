"""What ``POST /slack/events`` does before bolt sees a request: bound the body, verify the signature, refuse replays.

An unauthenticated request must cost almost nothing: the body is read up to ``max_bytes`` (Slack's payloads are
a few KB; a message with 50 full blocks stays far under the default 1 MiB) and refused with 413 beyond it, the
signature is checked on the raw bytes before anything parses them, and a signed request seen before within
Slack's 5-minute window is refused (a small cache of signatures). Refusals are 4xx with a one-line JSON body
and are logged without the body: bolt's own verifier, which logs rejected bodies, only ever sees verified ones.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from slack_sdk.signature import SignatureVerifier
from starlette.requests import Request
from starlette.types import Message

MAX_BODY_BYTES = 1024 * 1024
REPLAY_WINDOW_SECONDS = 5 * 60
MAX_REMEMBERED = 100_000


@dataclass(frozen=True)
class Refusal:
    """Why a request never reached bolt: the HTTP status and a short reason (no request data in it)."""

    status: int
    reason: str


class SlackRequestGuard:
    """Checks one HTTP request from Slack; ``check`` returns the verified request (its body replayable) or a
    ``Refusal``."""

    def __init__(self, signing_secret: str, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self._verifier = SignatureVerifier(signing_secret)
        self.max_bytes = max_bytes
        self._seen: OrderedDict[str, float] = OrderedDict()

    async def check(self, request: Request) -> Request | Refusal:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return Refusal(413, f"the body is over {self.max_bytes} bytes")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_bytes:
                return Refusal(413, f"the body is over {self.max_bytes} bytes")
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not timestamp or not signature:
            return Refusal(401, "the request is not signed")
        if not self._verifier.is_valid(bytes(body), timestamp, signature):
            return Refusal(401, "the signature is invalid or more than 5 minutes old")
        if not self._first_time(signature):
            return Refusal(401, "the request was already received (replayed)")
        return _with_body(request, bytes(body))

    def _first_time(self, signature: str) -> bool:
        """Remember verified signatures for the replay window; a signature covers timestamp and body, so the
        same one twice is the same request sent again."""
        now = time.monotonic()
        while self._seen and (next(iter(self._seen.values())) < now or len(self._seen) > MAX_REMEMBERED):
            self._seen.popitem(last=False)
        if signature in self._seen:
            return False
        self._seen[signature] = now + REPLAY_WINDOW_SECONDS
        return True


def _with_body(request: Request, body: bytes) -> Request:
    """The same request with its (already read) body served again to whoever reads it next."""
    sent = False
    original = request.receive

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await original()  # the body is spent: what is left is the client's disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)
