"""What arrives before the SDK parses it: bodies that are not JSON-RPC, and batches.

JSON-RPC answers a body that is not JSON with ``-32700`` and one that is not a request object with ``-32600``;
the SDK answers the second with ``-32602`` and a pydantic dump over HTTP, and with nothing at all over stdio
(the client waits forever). Batches are part of exactly one MCP version, 2025-03-26: there each member is
answered and the answers come back as one array; on every other version a batch is refused with ``-32600``.

Over stdio this is a line filter between the pipe and the SDK's own stdio transport; over HTTP an ASGI guard in
front of ``/mcp`` (a batch's members are each sent through the MCP app as one request, and their answers
gathered). Both decide with ``classify``, which is pure.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
from mcp.server.stdio import stdio_server
from mcp_types import INVALID_REQUEST, PARSE_ERROR, jsonrpc_message_adapter
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

BATCH_VERSION = "2025-03-26"
"""The one protocol version whose JSON-RPC allows batches."""
MAX_BATCH = 100
"""Most members in one batch: each is a request the server runs."""
MAX_BODY_BYTES = 4 * 1024 * 1024
"""Most bytes of one HTTP body or stdio line the guard reads (the SDK's own HTTP limit)."""
STDIO_DRAIN_SECONDS = 60.0
"""Longest wait, once stdin has ended, for the answers to requests that arrived before it (a tool call's
ModelArts requests with their retries fit well inside)."""


def error(code: int, message: str, request_id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


def _id_of(obj: Any) -> Any:
    """The id to answer with, when one can be read (JSON-RPC: null when it cannot)."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str | int) and not isinstance(value, bool):
            return value
    return None


def invalid(obj: Any) -> dict[str, Any] | None:
    """``-32600`` for one message that is not a JSON-RPC request, notification or response, else None."""
    try:
        jsonrpc_message_adapter.validate_python(obj, by_name=False)
    except ValidationError:
        return error(
            INVALID_REQUEST,
            'Invalid Request: expected a JSON-RPC 2.0 object with "jsonrpc": "2.0", a "method" string, '
            'optional "params" object and, for a request, an "id" string or number.',
            _id_of(obj),
        )
    return None


@dataclass
class Verdict:
    """What to do with one incoming body: ``answer`` it at once, pass ``members`` on (one message for a plain
    body, several for a batch), and ``batch`` says the members' answers are gathered into one array."""

    answer: Any = None
    members: list[Any] = field(default_factory=list)
    batch: bool = False
    early: list[dict[str, Any]] = field(default_factory=list)
    """A batch's answers known before it runs (its invalid members)."""


def classify(body: str | bytes, version: str | None) -> Verdict:
    """Decide about one body; ``version`` is the negotiated protocol version when known."""
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        return Verdict(answer=error(PARSE_ERROR, "Parse error: the message is not valid JSON."))
    if not isinstance(obj, list):
        problem = invalid(obj)
        return Verdict(answer=problem) if problem else Verdict(members=[obj])
    if version != BATCH_VERSION:
        shown = f"protocol version {version}" if version else "this session"
        return Verdict(
            answer=error(
                INVALID_REQUEST,
                f"Invalid Request: batches are not supported on {shown} (only on {BATCH_VERSION}); send each "
                "message on its own.",
            )
        )
    if not obj:
        return Verdict(answer=error(INVALID_REQUEST, "Invalid Request: an empty batch."))
    if len(obj) > MAX_BATCH:
        return Verdict(answer=error(INVALID_REQUEST, f"Invalid Request: a batch of at most {MAX_BATCH} messages."))
    verdict = Verdict(batch=True)
    for member in obj:
        problem = invalid(member)
        if problem is None and isinstance(member, dict) and member.get("method") == "initialize":
            problem = error(INVALID_REQUEST, "Invalid Request: initialize must not be part of a batch.", _id_of(member))
        if problem:
            verdict.early.append(problem)
        else:
            verdict.members.append(member)
    return verdict


# -- stdio -----------------------------------------------------------------------------------------


class _Lines:
    """The two ends of the pipe as the SDK's stdio transport sees them: incoming lines filtered through
    ``classify``, outgoing ones watched for the negotiated version and gathered into batch answers."""

    def __init__(self, stdin: Any, stdout: Any) -> None:
        self._in, self._out = stdin, stdout
        self._initialize_ids: set[Any] = set()
        self.version: str | None = None
        self._batches: list[tuple[set[Any], list[dict[str, Any]]]] = []
        self._lock = anyio.Lock()
        self._unanswered: set[Any] = set()
        self._answered = anyio.Event()

    def __aiter__(self) -> AsyncIterator[str]:
        return self._read()

    async def _read(self) -> AsyncIterator[str]:
        async for line in self._in:
            if not line.strip():
                continue
            verdict = classify(line[:MAX_BODY_BYTES], self.version)
            if verdict.answer is not None:
                await self._emit(verdict.answer)
                continue
            waiting = {_id_of(m) for m in verdict.members if "id" in m and "method" in m}
            if verdict.batch:
                if waiting:
                    self._batches.append((waiting, list(verdict.early)))
                elif verdict.early:
                    await self._emit(verdict.early)
            for member in verdict.members:
                if member.get("method") == "initialize":
                    self._initialize_ids.add(_id_of(member))
                self._track(member)
                yield json.dumps(member) + "\n"
        await self._drain()

    def _track(self, member: dict[str, Any]) -> None:
        """Remember a request until it is answered; forget one the client cancels (it is never answered)."""
        if "method" in member and "id" in member:
            self._unanswered.add(member["id"])
        elif member.get("method") == "notifications/cancelled" and isinstance(member.get("params"), dict):
            self._unanswered.discard(member["params"].get("requestId"))

    async def _drain(self) -> None:
        """End of stdin is the client's half-close, not its disappearance: ``printf … | services-bot mcp``, or a
        client that writes its requests and closes its end, still reads the answers. The SDK cancels whatever is
        still running once the input ends, so the input is held open here until every request has its answer
        (or ``STDIO_DRAIN_SECONDS`` pass)."""
        with anyio.move_on_after(STDIO_DRAIN_SECONDS) as waited:
            while self._unanswered:
                self._answered = anyio.Event()
                await self._answered.wait()
        if waited.cancelled_caught:
            log.warning(
                "stdin ended; %d request(s) still unanswered after %.0f s, exiting", len(self._unanswered),
                STDIO_DRAIN_SECONDS,
            )  # fmt: skip

    async def write(self, text: str) -> None:
        message = json.loads(text)
        request_id = message.get("id")
        if "method" not in message and request_id in self._unanswered:
            self._unanswered.discard(request_id)
            self._answered.set()
        if request_id in self._initialize_ids and isinstance(message.get("result"), dict):
            self._initialize_ids.discard(request_id)
            self.version = message["result"].get("protocolVersion")
        for waiting, answers in self._batches:
            if "method" not in message and request_id in waiting:
                waiting.discard(request_id)
                answers.append(message)
                if not waiting:
                    self._batches.remove((waiting, answers))
                    await self._emit(answers)
                return
        await self._emit(message)

    async def flush(self) -> None:
        """Each write is flushed as it is emitted."""

    async def _emit(self, message: Any) -> None:
        async with self._lock:
            await self._out.write(json.dumps(message, separators=(",", ":")) + "\n")
            await self._out.flush()


@asynccontextmanager
async def guarded_stdio() -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's stdio transport behind the line filter. The wire is a private copy of fds 0 and 1, and fd 1
    then points at stderr, so a stray print cannot corrupt the protocol (as the SDK's own claim does)."""
    wire_in = os.fdopen(os.dup(0), "rb", buffering=0)
    wire_out = os.fdopen(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    stdin = anyio.wrap_file(_text(wire_in))
    stdout = anyio.wrap_file(_text(wire_out))
    lines = _Lines(stdin, stdout)
    async with stdio_server(stdin=lines, stdout=lines) as streams:  # type: ignore[arg-type]
        yield streams


def _text(binary: Any) -> Any:
    import io

    return io.TextIOWrapper(binary, encoding="utf-8", errors="replace", write_through=True)


# -- HTTP ------------------------------------------------------------------------------------------


class JsonRpcBodyGuard:
    """In front of the Streamable HTTP app: refuses what is not JSON-RPC, and runs 2025-03-26 batches."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/mcp"):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_BODY_BYTES:
                await _json(send, 413, error(INVALID_REQUEST, f"Invalid Request: at most {MAX_BODY_BYTES} bytes."))
                return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        # Clients send the header from 2025-06-18 on; without it the spec says to assume 2025-03-26.
        version = headers.get("mcp-protocol-version", BATCH_VERSION)
        verdict = classify(body, version)
        if verdict.answer is not None:
            await _json(send, 400, verdict.answer)
        elif not verdict.batch:
            await self.app(scope, _replay(body, receive), send)
        else:
            answers = list(verdict.early)
            for member in verdict.members:
                answers += await self._one(scope, receive, member)
            if answers:
                await _json(send, 200, answers)
            else:
                await send({"type": "http.response.start", "status": 202, "headers": []})
                await send({"type": "http.response.body", "body": b""})

    async def _one(self, scope: Scope, receive: Receive, member: dict[str, Any]) -> list[dict[str, Any]]:
        """One batch member through the MCP app; its JSON-RPC answer, read from JSON or from the SSE stream."""
        status, chunks, kind = 0, [], ""

        async def collect(message: Message) -> None:
            nonlocal status, kind
            if message["type"] == "http.response.start":
                status = message["status"]
                kind = dict(message.get("headers", [])).get(b"content-type", b"").decode()
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, _replay(json.dumps(member).encode(), receive), collect)
        raw = b"".join(chunks).decode("utf-8", "replace")
        if "text/event-stream" in kind:
            found = [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:") and line[5:].strip()]
        elif raw.strip():
            found = [json.loads(raw)]
        else:
            found = []
        answers = [m for m in found if isinstance(m, dict) and "method" not in m]
        if not answers and "id" in member and status >= 400:
            answers = [error(INVALID_REQUEST, f"The request was refused (HTTP {status}).", _id_of(member))]
        return answers


def _replay(body: bytes, then: Receive) -> Receive:
    """``body`` as the request's one body message; after it, the client's own messages (its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await then()

    return receive


async def _json(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
