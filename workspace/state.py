"""Everything one workspace holds: channels, messages (normal and ephemeral), recorded Web API calls, faults,
response_urls and the event feed a live page follows.

One object on ``app.state.workspace``; it is only changed from the server's event loop (the handlers), so it
needs no locks. Tests in another thread may read it, and ``WorkspaceSettings.app_url`` may be assigned from
anywhere.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from services_bot.workspace.settings import ChannelSpec, UserSpec, WorkspaceSettings
from services_bot.workspace.socket_mode import SocketHub

SLACKBOT = "USLACKBOT"


def ts_key(ts: str) -> Decimal:
    """Slack timestamps are decimal strings; compare them exactly (floats lose the microseconds)."""
    try:
        return Decimal(ts)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not a Slack timestamp: {ts!r}") from None


@dataclass
class Message:
    """A stored message. Ephemeral messages get a ``ts`` too, so a click can name them, as Slack's
    ``container.message_ts`` does."""

    ts: str
    channel: str
    user: str
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    metadata: dict[str, Any] | None = None
    thread_ts: str | None = None
    reply_broadcast: bool = False
    ephemeral: bool = False
    visible_to: str | None = None
    from_app: bool = True
    source: str = "api"
    """How it got here: ``api`` (chat.*), ``ack`` (the body of a command's ack), ``response_url``, ``slackbot``."""
    edited: dict[str, str] | None = None
    replaced: bool = False
    posted_at: float = field(default_factory=time.time)

    def is_reply(self) -> bool:
        return self.thread_ts is not None and self.thread_ts != self.ts

    def to_slack(
        self, settings: WorkspaceSettings, *, include_metadata: bool, replies: list[Message]
    ) -> dict[str, Any]:
        """The message as conversations.history / replies return it."""
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "user": self.user, "text": self.text}
        if self.from_app:
            out["bot_id"] = settings.bot_id
            out["app_id"] = settings.app_id
            out["bot_profile"] = {
                "id": settings.bot_id,
                "app_id": settings.app_id,
                "name": settings.bot_user_name,
                "team_id": settings.team_id,
                "deleted": False,
            }
        out["team"] = settings.team_id
        if self.blocks is not None:
            out["blocks"] = self.blocks
        if self.attachments is not None:
            out["attachments"] = self.attachments
        if self.thread_ts is not None:
            out["thread_ts"] = self.thread_ts
            if self.is_reply():
                out["parent_user_id"] = settings.bot_user_id
                if self.reply_broadcast:
                    out["subtype"] = "thread_broadcast"
        if replies:
            out["thread_ts"] = self.ts
            out["reply_count"] = len(replies)
            users = sorted({r.user for r in replies})
            out["reply_users"] = users
            out["reply_users_count"] = len(users)
            out["latest_reply"] = replies[-1].ts
        if self.edited is not None:
            out["edited"] = dict(self.edited)
        if include_metadata and self.metadata is not None:
            out["metadata"] = self.metadata
        return out

    def to_view(self) -> dict[str, Any]:
        """Everything about the message, for tests and the page (the control API)."""
        return {
            "ts": self.ts,
            "channel": self.channel,
            "user": self.user,
            "text": self.text,
            "blocks": self.blocks,
            "attachments": self.attachments,
            "metadata": self.metadata,
            "thread_ts": self.thread_ts,
            "reply_broadcast": self.reply_broadcast,
            "ephemeral": self.ephemeral,
            "visible_to": self.visible_to,
            "from_app": self.from_app,
            "source": self.source,
            "edited": self.edited is not None,
            "edited_ts": self.edited["ts"] if self.edited else None,
            "replaced": self.replaced,
            "posted_at": self.posted_at,
        }


@dataclass
class MethodFault:
    """Faults armed for one Web API method (or ``*`` for all)."""

    rate_limited: int = 0
    retry_after: int = 1
    error: str | None = None
    error_count: int = 0
    status: int | None = None
    status_count: int = 0
    latency: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rate_limited": self.rate_limited,
            "retry_after": self.retry_after,
            "error": self.error,
            "error_count": self.error_count,
            "status": self.status,
            "status_count": self.status_count,
            "latency": self.latency,
        }


@dataclass
class FaultOutcome:
    """What to do to one call: wait ``latency`` seconds, then answer normally or with one injected failure."""

    latency: float = 0.0
    kind: Literal["none", "ratelimited", "status", "error"] = "none"
    retry_after: int = 0
    status: int = 200
    error: str = ""


class Faults:
    """Counted faults per method: each failing call uses one up, so "the next 2 calls" means exactly that."""

    def __init__(self) -> None:
        self.by_method: dict[str, MethodFault] = {}

    def get(self, method: str) -> MethodFault:
        return self.by_method.setdefault(method, MethodFault())

    def take(self, method: str) -> FaultOutcome:
        outcome = FaultOutcome()
        for key in (method, "*"):
            fault = self.by_method.get(key)
            if fault is None:
                continue
            outcome.latency = max(outcome.latency, fault.latency)
            if outcome.kind != "none":
                continue
            if fault.rate_limited > 0:
                fault.rate_limited -= 1
                outcome.kind, outcome.retry_after, outcome.status = "ratelimited", fault.retry_after, 429
            elif fault.status is not None and fault.status_count > 0:
                fault.status_count -= 1
                outcome.kind, outcome.status = "status", fault.status
            elif fault.error is not None and fault.error_count > 0:
                fault.error_count -= 1
                outcome.kind, outcome.error = "error", fault.error
        return outcome

    def as_dict(self) -> dict[str, Any]:
        return {method: fault.as_dict() for method, fault in self.by_method.items()}


@dataclass
class ResponseUrl:
    """One response_url: bound to a channel and a user, and for a click to the message the button was on."""

    id: str
    kind: Literal["command", "click"]
    channel: str
    user: str
    message_ts: str | None = None
    thread_ts: str | None = None
    created: float = field(default_factory=time.monotonic)
    uses: int = 0


class EventFeed:
    """A numbered log of what happened (messages posted, changed, deleted; commands; clicks) that a page
    long-polls. Waiters are futures on the server's loop; ``publish`` may be called from that loop only, or
    from another thread, in which case it hops onto the loop."""

    def __init__(self, size: int) -> None:
        self.events: deque[dict[str, Any]] = deque(maxlen=size)
        self.seq = 0
        self._waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def publish(self, type_: str, **data: Any) -> dict[str, Any]:
        self.seq += 1
        event = {"seq": self.seq, "type": type_, "at": time.time(), **data}
        self.events.append(event)
        loop = self._loop
        if loop is not None and self._thread != threading.get_ident():
            loop.call_soon_threadsafe(self._wake)
        else:
            self._wake()
        return event

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def after(self, seq: int) -> list[dict[str, Any]]:
        return [e for e in self.events if e["seq"] > seq]

    async def wait_after(self, seq: int, seconds: float) -> list[dict[str, Any]]:
        """Events newer than ``seq``, waiting up to ``seconds`` for the first one."""
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        deadline = self._loop.time() + seconds
        while True:
            found = self.after(seq)
            remaining = deadline - self._loop.time()
            if found or remaining <= 0:
                return found
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                pass
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)


class WorkspaceState:
    """The mutable world of one workspace; ``reset`` empties it but keeps the channels and users."""

    def __init__(self, settings: WorkspaceSettings) -> None:
        self.closing = False  # set when the server stops, so long-polls end at once
        self.settings = settings
        self.url = ""
        """The workspace's own base URL, set once the server listens (response_urls and permalinks use it)."""
        self.events = EventFeed(settings.event_log_size)
        self.sockets = SocketHub(settings)
        """Socket Mode connections; ``reset`` keeps them (they are the app's, not the workspace's data)."""
        self._last_ts = Decimal(0)
        self._reset_data()

    def _reset_data(self) -> None:
        self.channels: dict[str, ChannelSpec] = {c.id: c.model_copy() for c in self.settings.channels}
        self.messages: dict[str, list[Message]] = {c: [] for c in self.channels}
        self.calls: deque[dict[str, Any]] = deque(maxlen=5000)
        self.call_seq = 0
        self.faults = Faults()
        self.response_urls: dict[str, ResponseUrl] = {}

    def reset(self) -> None:
        self._reset_data()
        self.events.publish("reset")

    # -- lookups -----------------------------------------------------------------------------------------

    def channel(self, ref: str) -> ChannelSpec | None:
        """By id, or by name with or without ``#`` (chat.postMessage accepts both)."""
        if ref in self.channels:
            return self.channels[ref]
        name = ref.removeprefix("#")
        return next((c for c in self.channels.values() if c.name == name), None)

    def user(self, user_id: str | None) -> UserSpec | None:
        if user_id is None:
            return self.settings.default_user
        return next((u for u in self.settings.users if u.id == user_id or u.name == user_id), None)

    def find(self, channel: str, ts: str) -> Message | None:
        return next((m for m in self.messages.get(channel, []) if m.ts == ts), None)

    def replies(self, channel: str, parent_ts: str) -> list[Message]:
        return [m for m in self.messages.get(channel, []) if m.thread_ts == parent_ts and m.ts != parent_ts]

    # -- changes -----------------------------------------------------------------------------------------

    def next_ts(self) -> str:
        """A unique, strictly increasing ``seconds.micros`` timestamp close to the wall clock."""
        now = Decimal(time.time_ns() // 1000) / Decimal(1_000_000)
        step = Decimal("0.000001")
        ts = now if now > self._last_ts else self._last_ts + step
        self._last_ts = ts
        return f"{ts:.6f}"

    def add(self, message: Message) -> Message:
        self.messages.setdefault(message.channel, []).append(message)
        self.events.publish(
            "ephemeral_posted" if message.ephemeral else "message_posted",
            channel=message.channel,
            message=message.to_view(),
        )
        return message

    def changed(self, message: Message) -> None:
        self.events.publish("message_updated", channel=message.channel, message=message.to_view())

    def delete(self, message: Message) -> None:
        self.messages[message.channel] = [m for m in self.messages[message.channel] if m is not message]
        self.events.publish("message_deleted", channel=message.channel, ts=message.ts, ephemeral=message.ephemeral)

    def new_response_url(
        self,
        kind: Literal["command", "click"],
        channel: str,
        user: str,
        message_ts: str | None = None,
        thread_ts: str | None = None,
    ) -> str:
        rid = secrets.token_urlsafe(12)
        self.response_urls[rid] = ResponseUrl(rid, kind, channel, user, message_ts, thread_ts)
        return f"{self.url}/response/{rid}"

    def record_call(
        self, method: str, args: dict[str, Any], http_method: str, user_agent: str | None = None
    ) -> dict[str, Any]:
        self.call_seq += 1
        call = {
            "seq": self.call_seq,
            "method": method,
            "args": args,
            "http_method": http_method,
            "user_agent": user_agent,
            "at": time.time(),
            "ok": None,
            "error": None,
            "status": None,
        }
        self.calls.append(call)
        return call
