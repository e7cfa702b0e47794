"""``WorkspaceClient``: the control API from async Python, for tests (and anything else that plays the user).

Every method is one HTTP call to ``/_workspace/``; errors from the workspace raise ``WorkspaceError`` with
the workspace's own message, so a failing test says what was wrong ("no button ...", "no app_url").
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx


class WorkspaceError(RuntimeError):
    """The control API refused a request; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _brief(message: dict[str, Any]) -> str:
    kind = "ephemeral" if message.get("ephemeral") else "message"
    text = (message.get("text") or "").replace("\n", " ")
    if len(text) > 100:
        text = text[:97] + "..."
    extra = f" thread={message['thread_ts']}" if message.get("thread_ts") else ""
    blocks = len(message.get("blocks") or [])
    return f"  [{message.get('channel')} {message.get('ts')} {kind}{extra}] {text!r} blocks={blocks}"


class WorkspaceClient:
    """Async client of a workspace's control API at ``base_url`` (the server's ``url``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url + "/_workspace", timeout=timeout, trust_env=False)

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, Any] | None = None
    ) -> Any:
        response = await self.http.request(method, path, json=body, params=params)
        if response.status_code >= 400:
            try:
                message = response.json().get("error", response.text)
            except (ValueError, AttributeError):
                message = response.text
            raise WorkspaceError(f"{method} /_workspace{path}: {message}", response.status_code)
        return response.json()

    # -- the user's actions --------------------------------------------------------------------------------

    async def command(
        self,
        text: str,
        channel: str = "C0GENERAL",
        *,
        command: str = "/services",
        user: str | None = None,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        via: str | None = None,
        send: bool = True,
    ) -> dict[str, Any]:
        """Run ``command text`` in ``channel``; returns ``status``, ``ack_ms``, ``ack_body``, ``response_url``,
        ``timed_out``, ``error``, ``sent`` (the form fields the bot got) and ``via``.

        ``via`` is ``http`` (a signed POST to the app URL), ``socket`` (an envelope over the app's Socket Mode
        connection) or None: the socket when one is open, else HTTP. ``send=False`` returns the signed request
        unsent (``request``: url, headers, body; plus ``response_url`` and ``sent``), for the caller to send."""
        body: dict[str, Any] = {
            "text": text,
            "channel": channel,
            "command": command,
            "bad_signature": bad_signature,
            "send": send,
        }
        for key, val in (("user", user), ("timestamp", timestamp), ("via", via)):
            if val is not None:
                body[key] = val
        return await self._call("POST", "/command", body)  # type: ignore[no-any-return]

    async def click(
        self,
        message: dict[str, Any] | str,
        action_id: str,
        value: str | None = None,
        *,
        channel: str | None = None,
        user: str | None = None,
        timestamp: int | str | None = None,
        bad_signature: bool = False,
        via: str | None = None,
    ) -> dict[str, Any]:
        """Click the button ``action_id`` (and ``value``, when several share it) on ``message`` (a message
        dict from ``messages()``, or its ts with ``channel``); ``via`` as for ``command``."""
        if isinstance(message, dict):
            ts, channel = message["ts"], channel or message["channel"]
        else:
            ts = message
        if channel is None:
            raise ValueError("give the channel when the message is a ts")
        body: dict[str, Any] = {
            "channel": channel,
            "message_ts": ts,
            "action_id": action_id,
            "bad_signature": bad_signature,
        }
        for key, val in (("value", value), ("user", user), ("timestamp", timestamp), ("via", via)):
            if val is not None:
                body[key] = val
        return await self._call("POST", "/click", body)  # type: ignore[no-any-return]

    async def post_as_user(
        self, text: str, channel: str = "C0GENERAL", *, user: str | None = None, thread_ts: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text, "channel": channel}
        if user is not None:
            body["user"] = user
        if thread_ts is not None:
            body["thread_ts"] = thread_ts
        return await self._call("POST", "/messages", body)  # type: ignore[no-any-return]

    # -- inspection ---------------------------------------------------------------------------------------

    async def info(self) -> dict[str, Any]:
        return await self._call("GET", "/info")  # type: ignore[no-any-return]

    async def messages(
        self, channel: str | None = None, include_ephemeral: bool = True, user: str | None = None
    ) -> list[dict[str, Any]]:
        """Messages oldest first, thread replies included; all channels when ``channel`` is None."""
        params: dict[str, Any] = {"include_ephemeral": "1" if include_ephemeral else "0"}
        if channel is not None:
            params["channel"] = channel
        if user is not None:
            params["user"] = user
        return (await self._call("GET", "/messages", params=params))["messages"]  # type: ignore[no-any-return]

    async def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """Recorded Web API calls (``method``, ``args``, ``at``, ``ok``, ``error``, ``status``), oldest first."""
        params = {"method": method} if method else None
        return (await self._call("GET", "/calls", params=params))["calls"]  # type: ignore[no-any-return]

    async def events(self, after: int = 0, wait: float = 0.0) -> dict[str, Any]:
        """The event feed after sequence number ``after``, long-polling up to ``wait`` seconds."""
        return await self._call("GET", "/events", params={"after": after, "timeout": wait})  # type: ignore[no-any-return]

    async def wait_for_messages(
        self,
        predicate: Callable[[list[dict[str, Any]]], Any],
        timeout: float = 5.0,  # noqa: ASYNC109 - the polling loop owns its deadline and its error message
        *,
        channel: str | None = None,
        include_ephemeral: bool = True,
        interval: float = 0.02,
    ) -> list[dict[str, Any]]:
        """Poll until ``predicate(messages)`` is truthy and return the messages; on timeout raise
        ``TimeoutError`` listing what was there."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.messages(channel, include_ephemeral)
            if predicate(found):
                return found
            if time.monotonic() >= deadline:
                where = channel or "any channel"
                shown = "\n".join(_brief(m) for m in found[-20:]) or "  (no messages)"
                raise TimeoutError(f"no match in {where} after {timeout}s; {len(found)} messages, last ones:\n{shown}")
            await asyncio.sleep(interval)

    async def socket_mode(self) -> dict[str, Any]:
        """Socket Mode as the workspace sees it: ``connected``, ``connections`` (id, counts), ``opened_total``."""
        return (await self.info())["socket_mode"]  # type: ignore[no-any-return]

    async def wait_for_sockets(
        self,
        count: int = 1,
        timeout: float = 5.0,  # noqa: ASYNC109 - the polling loop owns its deadline and its error message
        *,
        opened_total: int | None = None,
    ) -> dict[str, Any]:
        """Poll until exactly ``count`` Socket Mode connections are open (and, if given, at least
        ``opened_total`` were ever opened, to tell a reconnection from the old connection); raise
        ``TimeoutError`` with what was there."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.socket_mode()
            total_ok = opened_total is None or found["opened_total"] >= opened_total
            if len(found["connections"]) == count and total_ok:
                return found
            if time.monotonic() >= deadline:
                raise TimeoutError(f"wanted {count} Socket Mode connection(s) after {timeout}s; have {found}")
            await asyncio.sleep(0.02)

    # -- set-up -------------------------------------------------------------------------------------------

    async def set_fault(self, method: str | None = None, *, channel: str | None = None, **fault: Any) -> dict[str, Any]:
        """``set_fault("chat.postMessage", rate_limited=2, retry_after=1)``, ``error=..., count=N``,
        ``status=500, count=N``, ``latency=0.5``; ``set_fault(channel="C0ALERTS", not_in_channel=True)``."""
        body = dict(fault)
        if method is not None:
            body["method"] = method
        if channel is not None:
            body["channel"] = channel
        return await self._call("POST", "/faults", body)  # type: ignore[no-any-return]

    async def clear_faults(self) -> None:
        await self._call("DELETE", "/faults")

    async def set_app_url(self, url: str | None) -> None:
        await self._call("POST", "/app_url", {"url": url})

    async def drop_sockets(self, reason: str | None = "refresh_requested", grace: float | None = None) -> int:
        """Drop the app's Socket Mode connections: a ``disconnect`` message with ``reason`` first, then closed
        after ``grace`` seconds (default 1) unless the app left by itself; ``reason`` None closes them at once.
        Returns how many were dropped."""
        body: dict[str, Any] = {"reason": reason}
        if grace is not None:
            body["grace"] = grace
        return (await self._call("POST", "/socket/disconnect", body))["dropped"]  # type: ignore[no-any-return]

    async def reset(self) -> None:
        """Clear messages, calls, faults and response_urls; channels, users and the app URL stay."""
        await self._call("POST", "/reset")

    async def close(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> WorkspaceClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
