"""The watcher: polls every target, turns what changed into transitions, and commits them with their outbox rows.

Cheap polling. A steady-state poll asks for ``sort_by=transition_at&order=desc`` and stops paging at the first row
older than the watermark (the newest ``transition_at`` seen) minus ``overlap_seconds``; its first page is small
(``first_page`` rows, or twice what the previous scan found) and pages double up to the client's page size, so a
quiet fleet of any size costs one small request. The overlap absorbs equal timestamps and changes the API makes
visible a little late; rows already known are recognised and produce nothing. ``total_count`` of the same answer
tells whether services appeared with an old ``transition_at`` or disappeared: when it disagrees with what we know,
the target gets a full listing at once. A full listing also runs on start, on every ``resync_polls``-th poll, when
rows carry no ``transition_at`` (sparse rows) and when the offset reading is unknown and more than one page is
needed.

Trusting the order. The scan relies on ``sort_by=transition_at`` being honoured, which older documents do not
promise (the SDK's ``sort_by`` knows only ``publish_at`` and ``service_name``). So the first scan of a run
also reads one page oldest-changed first, which must come in that order; every page a scan reads is checked
whole, rows past the stop included, for times that never increase; and a full first page is checked against
the known state: a known service that changed after the page's oldest row must be on it, since transition
times only grow. Rows out of order, or a first page missing such a service in two scans in a row (once may be a
deleted service, and takes a full listing at once), mark the order unreliable: logged once, kept in the store across
restarts (meta ``full_listings_only:<target>``), shown by ``health()``, and the target gets a full listing every
poll from then on. Every ``resync_polls``-th of those polls then checks the order again, right after its listing
(the oldest-changed page, and each newest-first first page against the state the listing just gave);
``ORDER_PASSES`` passes in a row trust it again, a failure starts the count over.

Safety. A target's poll either completes and is committed in one transaction, or changes nothing. Deletions
are inferred only from a complete listing, and only once confirmed: services deleted while a listing pages
through offsets shift later rows back, so a live service can go unseen. A missing service is deleted when its
details answer 404; an answer means it is alive (the details row goes to the diff: it may carry a real
change); any other error keeps it as it was until the next full listing, and the rest of the poll commits.
More than ``confirm_limit`` missing services, or a mass disappearance (more than ``MASS_SHARE`` of the known
ones and at least ``MASS_MIN``), take a second full listing before anything is recorded; the services still
missing are then confirmed by details while they fit in ``confirm_limit``, else by the two listings alone
(details for thousands would be a burst against an API that may be struggling). A confirmed mass deletion
is marked ``grouped``: each channel gets it as one message, whatever the group threshold. ``outage_polls``
failed polls in a row of one target (the loop's own; answers' on-demand polls do not count, a success of
either does) produce one "cannot reach ModelArts" notice, and the next success one
"reachable again" notice.

The diff itself (``DiffBuilder``) compares the previous snapshot with the new rows without I/O; a full listing
feeds it a page at a time (``TargetClient.iter_pages``), so the watcher holds the compact records of the
whole fleet but the parsed API rows of one page only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from typing import Any, Literal

from services_bot.core.client import ListParams, ModelArtsClient
from services_bot.core.errors import ApiError, ApiNotFoundError, ServicesBotError, StoreError
from services_bot.core.generations import TargetClient
from services_bot.core.insights import is_generic_cause, latest_abnormal_cause
from services_bot.core.metrics import LAST_POLL_SUCCESS, POLL_SECONDS, POLLS, TRANSITIONS
from services_bot.core.models import UNHEALTHY_STATUSES, ListedService, Service
from services_bot.core.notifications import Notice, Transition
from services_bot.core.read_model import FleetCards, ServiceCard
from services_bot.core.store import KnownService, Store, from_ms, to_ms

log = logging.getLogger("services_bot.watcher")

Listener = Callable[[list[Transition]], Awaitable[None]]
PollMode = Literal["baseline", "full", "incremental"]
PRUNE_EVERY_SECONDS = 3600.0
ORDER_UNRELIABLE = "server ignores sort_by=transition_at"
MASS_SHARE = 0.2
"""More than this share of the known services missing from one listing (and at least ``MASS_MIN``) is a mass
disappearance: a second listing checks it before anything is recorded."""
MASS_MIN = 5
_ORDER_META = "full_listings_only:"
ORDER_PASSES = 3
"""Checks in a row, ``resync_polls`` polls apart, that must find the order honoured before a target that
failed one gets incremental polls again: a server that sorted wrongly for an hour is not trusted on one page."""
_NO_FLOOR = 2**62


@dataclass
class Diff:
    """What one listing changed: the rows to store, the ids to forget, the transitions to report."""

    upserts: list[KnownService] = field(default_factory=list)
    deletions: list[str] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)


@dataclass
class TargetPoll:
    """One target's part of a poll."""

    target: str
    mode: PollMode
    ok: bool = True
    requests: int = 0
    detail_requests: int = 0
    rows: int = 0
    transitions: int = 0
    unconfirmed: int = 0
    """Services missing from the listing whose deletion could not be confirmed: kept until the next full one."""
    reason: str | None = None
    error: str | None = None


@dataclass
class PollResult:
    """One poll of every target."""

    poll_id: str
    started_at: datetime
    duration_seconds: float
    targets: list[TargetPoll]
    transitions: list[Transition]
    notices: list[Notice] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.targets)

    @property
    def requests(self) -> int:
        return sum(t.requests for t in self.targets)

    @property
    def full(self) -> bool:
        return any(t.mode != "incremental" for t in self.targets)


@dataclass
class TargetHealth:
    """The watcher's view of one target, kept between polls (and partly in the store)."""

    name: str
    reachable: bool = True
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None
    failing: bool = False
    """The last poll, counted or not, failed for the API (what answers from the state warn about)."""
    outage_notified: bool = False
    polls_since_full: int = 0
    force_full: bool = True
    baselined: bool = False
    watermark_ms: int | None = None
    recent_rows: int = 0
    known: dict[str, KnownService] | None = None
    order_checked: bool = False
    """The server was seen to sort by ``transition_at`` (the probe of a run's first scan), and still is trusted."""
    order_suspect: bool = False
    """The last scan's first page missed a known recent change: once may be a deletion, twice is the order."""
    full_listings_only: str | None = None
    """Why this target gets a full listing every poll (its newest-first answers cannot be trusted); in the store."""
    distrusted_polls: int = 0
    """Scheduled polls since the order was distrusted (or since this run began): every ``resync_polls``-th one
    checks the order again."""
    order_passes: int = 0
    """Checks of the order passed in a row since it was distrusted: ``ORDER_PASSES`` of them trust it again."""
    members: dict[str, set[str]] = field(default_factory=dict)
    """Per API generation, the ids it served in the last full listing (and scans since): with several
    generations, what each one's scan must account for (a service both report is counted by both)."""


def known_from(service: ListedService) -> KnownService:
    return KnownService(
        service_id=service.service_id,
        service_name=service.service_name,
        status=service.status,
        transition_ms=to_ms(service.transition_at),
        infer_type=service.infer_type,
        workspace_id=service.workspace_id,
    )


class DiffBuilder:
    """The diff of rows against the last known state, a page at a time: ``add`` each batch of rows as it arrives,
    then ``finish``. Only a ``complete`` listing has ``missing`` services, and those are deletions only once
    the caller has confirmed them gone (``finish(gone)``): a listing can miss a live service. It keeps
    only compact ``KnownService`` records, the ids seen and the transitions, never the rows themselves, so
    a full listing of any size goes through one page at a time.

    ``announce`` limits the transitions made to those whose ``to_status`` is in it (a baseline that reports
    nothing passes an empty set); None makes every transition. Upserts and deletions are not affected.
    ``cards_before`` are the fleet's cards as they are: a row that shows nothing new keeps its card, so a full
    listing of 100 000 services builds cards only for what changed, not a second set of them.
    """

    def __init__(
        self,
        known: dict[str, KnownService],
        *,
        complete: bool,
        target: str,
        project_id: str | None,
        observed_at: datetime,
        announce: Collection[str] | None = None,
        cards_before: Mapping[str, ServiceCard] | None = None,
    ) -> None:
        self.known = known
        self.cards_before = cards_before or {}
        self.complete = complete
        self.target = target
        self.project_id = project_id
        self.observed_at = observed_at
        self.announce = announce
        self.diff = Diff()
        self.seen: set[str] = set()
        self.rows = 0
        self.cards: dict[str, ServiceCard] = {}
        """What answers show of every row added (``core.read_model``), for the fleet cards once committed."""
        self.newest_ms: int | None = None
        """The newest ``transition_at`` (epoch ms) of every row added, changed or not."""

    def add(self, rows: Iterable[ListedService]) -> None:
        out = self.diff
        for row in rows:
            self.rows += 1
            moment = to_ms(row.transition_at)
            if moment is not None and (self.newest_ms is None or moment > self.newest_ms):
                self.newest_ms = moment
            if row.service_id in self.seen:
                continue
            self.seen.add(row.service_id)
            card = ServiceCard.of(row, self.target)
            kept = self.cards_before.get(row.service_id)
            self.cards[row.service_id] = kept if kept == card else card
            now = known_from(row)
            before = self.known.get(row.service_id)
            if before == now:
                continue
            out.upserts.append(now)
            kind = _kind(before, now)
            if kind is None or (self.announce is not None and now.status not in self.announce):
                continue  # a rename or a move: stored, not announced (or not to be announced now)
            out.transitions.append(
                Transition(
                    target=self.target,
                    project_id=self.project_id,
                    service_id=now.service_id,
                    service_name=now.service_name,
                    kind=kind,
                    from_status=before.status if before else None,
                    to_status=now.status,
                    transition_at=row.transition_at,
                    observed_at=self.observed_at,
                    error_msg=row.error_msg,
                    infer_type=now.infer_type,
                    workspace_id=now.workspace_id,
                )
            )

    def missing(self) -> list[str]:
        """Known services a complete listing did not show: deletion candidates until confirmed gone."""
        if not self.complete:
            return []
        return [service_id for service_id in self.known if service_id not in self.seen]

    def finish(self, gone: Collection[str] = (), *, grouped: bool = False) -> Diff:
        """The diff. Of the known services a ``complete`` listing did not show, those in ``gone`` (confirmed
        deleted) are deletions, their transitions marked ``grouped`` for a confirmed mass deletion."""
        out = self.diff
        confirmed = set(gone)
        if not self.complete or not confirmed:
            return out
        for service_id, last in self.known.items():
            if service_id in self.seen or service_id not in confirmed:
                continue
            out.deletions.append(service_id)
            if self.announce is not None:
                continue  # a deletion has no to_status to announce
            out.transitions.append(
                Transition(
                    target=self.target,
                    project_id=self.project_id,
                    service_id=service_id,
                    service_name=last.service_name,
                    kind="deleted",
                    from_status=last.status,
                    to_status=None,
                    transition_at=None,
                    observed_at=self.observed_at,
                    infer_type=last.infer_type,
                    workspace_id=last.workspace_id,
                    grouped=grouped,
                )
            )
        return out


def _kind(before: KnownService | None, now: KnownService) -> Literal["changed", "new", "flap"] | None:
    if before is None:
        return "new"
    if before.status != now.status:
        return "changed"
    if before.transition_ms is not None and now.transition_ms is not None and now.transition_ms > before.transition_ms:
        return "flap"
    return None


class _NeedsFullListing(Exception):
    """The cheap scan cannot be trusted this time; ``str()`` says why."""


class _OutOfOrder(_NeedsFullListing):
    """A page of a newest-first scan was not newest first: the server does not sort as asked."""

    def __init__(self) -> None:
        super().__init__(ORDER_UNRELIABLE)


@dataclass(frozen=True)
class _FirstPage:
    """The first page of one workspace's newest-first scan, to check against the known state. With several API
    generations, ``members`` holds the ids of the generation scanned: only those can be missed by its page."""

    workspace_id: str | None
    ids: frozenset[str]
    oldest_ms: int | None
    full: bool
    members: frozenset[str] | set[str] | None = None

    def misses(self, known: Iterable[KnownService]) -> bool:
        """Transition times only grow, so in a newest-first answer every known service of the workspace that
        changed after the page's oldest row is on a full page; one that is not says the order is wrong (or the
        service is gone)."""
        if not self.full or self.oldest_ms is None:
            return False
        oldest, ws = self.oldest_ms, self.workspace_id
        return any(
            k.transition_ms is not None
            and k.transition_ms > oldest
            and k.service_id not in self.ids
            and (ws is None or k.workspace_id == ws)
            and (self.members is None or k.service_id in self.members)
            for k in known
        )


class Watcher:
    """Polls ``clients`` every ``poll_seconds`` and records what changed in ``store``."""

    def __init__(
        self,
        clients: list[TargetClient],
        store: Store,
        *,
        poll_seconds: float = 30.0,
        resync_polls: int = 20,
        notify_baseline: bool = False,
        outage_polls: int = 3,
        alert_channel: str | None = None,
        overlap_seconds: float = 60.0,
        first_page: int = 20,
        detail_limit: int = 20,
        confirm_limit: int = 20,
    ) -> None:
        if not clients:
            raise ValueError("at least one target is needed")
        self.clients = clients
        self.store = store
        self.poll_seconds = poll_seconds
        self.resync_polls = max(1, resync_polls)
        self.notify_baseline = notify_baseline
        self.outage_polls = max(1, outage_polls)
        self.alert_channel = alert_channel
        self.overlap_ms = int(overlap_seconds * 1000)
        self.first_page = max(2, first_page)
        self.detail_limit = detail_limit
        self.confirm_limit = max(0, confirm_limit)
        self.targets: dict[str, TargetHealth] = {c.target.name: TargetHealth(c.target.name) for c in clients}
        self.polls = 0
        self.errors = 0
        self.last_poll: PollResult | None = None
        self._listeners: list[Listener] = []
        self._last_prune = 0.0
        self.fleet = FleetCards()
        """What answers show of every known service, as of the last committed poll (``core.read_model``)."""
        self._inflight: asyncio.Future[PollResult] | None = None
        self._inflight_counts = True
        self._inflight_started = float("-inf")
        self._queued: asyncio.Future[PollResult] | None = None
        self._last_started = float("-inf")
        """When the last poll that ended had started (monotonic): the moment the state it left is as of."""

    # -- health ------------------------------------------------------------------------------------

    @property
    def consecutive_failures(self) -> int:
        return max(t.consecutive_failures for t in self.targets.values())

    @property
    def last_success_at(self) -> datetime | None:
        """When every target had been read successfully at least once, the oldest of their last successes."""
        times = [t.last_success_at for t in self.targets.values()]
        return None if any(t is None for t in times) else min(t for t in times if t is not None)

    @property
    def last_error(self) -> str | None:
        return next((t.last_error for t in self.targets.values() if t.last_error), None)

    def health(self) -> dict[str, Any]:
        """A JSON-ready snapshot for ``/healthz`` and ``/metrics``."""
        return {
            "polls": self.polls,
            "errors": self.errors,
            "consecutive_failures": self.consecutive_failures,
            "last_success_at": self.last_success_at.isoformat() if self.last_success_at else None,
            "last_error": self.last_error,
            "targets": {
                name: {
                    "reachable": t.reachable,
                    "consecutive_failures": t.consecutive_failures,
                    "last_success_at": t.last_success_at.isoformat() if t.last_success_at else None,
                    "last_error": t.last_error,
                    "services": len(t.known) if t.known is not None else None,
                    "watermark": from_ms(t.watermark_ms).isoformat() if t.watermark_ms else None,
                    "order_checked": t.order_checked,
                    "full_listings_only": t.full_listings_only,
                    "order_passes": t.order_passes,
                }
                for name, t in self.targets.items()
            },
        }

    def add_listener(self, callback: Listener) -> None:
        """``callback(transitions)`` after each poll that committed transitions or notices (the list may be
        empty when only a notice was queued). Errors are logged and never stop the watcher."""
        self._listeners.append(callback)

    # -- loop --------------------------------------------------------------------------------------

    async def run(self) -> None:
        """Poll forever (until cancelled). An exception is logged and counted; the next poll still comes."""
        while True:
            started = time.monotonic()
            try:
                await self.poll_once()
                if started - self._last_prune >= PRUNE_EVERY_SECONDS:
                    self._last_prune = started
                    await self.store.prune()
            except asyncio.CancelledError:
                for pending in (self._queued, self._inflight):
                    if pending is not None:
                        pending.cancel()  # stopping: no poll of ours goes on writing
                raise
            except Exception:
                self.errors += 1
                log.exception("watcher poll crashed")
            await asyncio.sleep(max(0.0, self.poll_seconds - (time.monotonic() - started)))

    async def poll_once(self) -> PollResult:
        """Poll every target concurrently; each target commits on its own, so one failing spoils no other. A call
        while a poll is under way shares it: the loop's poll and answers' on-demand polls are one at a time."""
        return await asyncio.shield(self._shared_poll(scheduled=True))

    def poll_if_older(self, seconds: float) -> asyncio.Future[PollResult] | None:
        """A poll that started at most ``seconds`` ago, to wait for (None: the last one did, nothing to wait for).
        What an answer stands on (``core.read_model``): the poll under way if it started late enough, else the
        one after it, each shared by every asker, so a flood of questions costs one poll at a time."""
        floor = time.monotonic() - seconds
        if self._inflight is None:
            return None if self._last_started >= floor else self._shared_poll()
        if self._inflight_started >= floor:
            return self._inflight
        if self._queued is None:
            self._queued = asyncio.ensure_future(self._poll_after(self._inflight))
        return self._queued

    async def _poll_after(self, current: asyncio.Future[PollResult]) -> PollResult:
        await asyncio.wait({current})
        self._queued = None
        return await asyncio.shield(self._shared_poll())

    def _shared_poll(self, *, scheduled: bool = False) -> asyncio.Future[PollResult]:
        """The poll under way, or a new one. Only a ``scheduled`` poll (the loop's, or a caller's ``poll_once``)
        moves the resync count: answers asking for polls must not make full listings come sooner."""
        if self._inflight is None:
            self._inflight_started = time.monotonic()
            self._inflight_counts = scheduled
            self._inflight = asyncio.ensure_future(self._poll_all(scheduled))
            self._inflight.add_done_callback(self._poll_done)
        elif scheduled:
            self._inflight_counts = True  # the loop's tick joined an answer's poll: its failure is the tick's
        return self._inflight

    def _poll_done(self, task: asyncio.Future[PollResult]) -> None:
        self._inflight = None
        self._last_started = self._inflight_started
        if not task.cancelled():
            task.exception()  # retrieved: the loop's own call counts and logs a crash; an answer only waits

    async def _poll_all(self, scheduled: bool = True) -> PollResult:
        started_at = datetime.now(UTC)
        clock = time.monotonic()
        self.polls += 1
        poll_id = f"{to_ms(started_at):x}-{self.polls}"
        results = await asyncio.gather(*(self._poll_target(c, poll_id, scheduled) for c in self.clients))
        transitions = [t for _poll, stored in results for t in stored]
        notices: list[Notice] = []
        counts = self._inflight_counts
        for client, (poll, _stored) in zip(self.clients, results, strict=True):
            notice = self._reachability(self.targets[client.target.name], poll, counts=counts)
            if notice is not None:
                notices.append(notice)
                await self._queue_notice(notice, poll_id)
        result = PollResult(
            poll_id=poll_id,
            started_at=started_at,
            duration_seconds=time.monotonic() - clock,
            targets=[poll for poll, _stored in results],
            transitions=transitions,
            notices=notices,
        )
        self.last_poll = result
        POLL_SECONDS.observe(result.duration_seconds)
        if transitions or notices:
            await self._notify(transitions)
        return result

    async def _notify(self, transitions: list[Transition]) -> None:
        for listener in list(self._listeners):
            try:
                await listener(transitions)
            except Exception:
                log.exception("watcher listener failed", extra={"listener": getattr(listener, "__name__", "?")})

    async def _queue_notice(self, notice: Notice, poll_id: str) -> None:
        await self.store.set_meta(f"outage:{notice.target}", "1" if notice.kind == "outage" else None)
        if self.alert_channel:
            await self.store.add_notice(self.alert_channel, notice, poll_id)

    def _reachability(self, state: TargetHealth, poll: TargetPoll, *, counts: bool = True) -> Notice | None:
        """Count failures in a row; one notice when a target is declared unreachable, one when it is back. Only
        polls that ``count`` (the loop's ticks) move the count: answers asking for polls during a blip must not
        turn three questions in ten seconds into an outage notice that ``outage_polls`` ticks would not give.
        Any poll's failure is remembered (``failing``), so answers still say that ModelArts is not answering."""
        if poll.ok:
            state.failing = False
            state.consecutive_failures = 0
            state.reachable = True
            state.last_error = None
            state.last_success_at = datetime.now(UTC)
            if state.outage_notified:
                state.outage_notified = False
                return Notice(
                    kind="recovered",
                    target=state.name,
                    text=f"ModelArts ({state.name}) is reachable again; status alerts are back on.",
                )
            return None
        if poll.reason == "internal":
            return None  # our own failure (e.g. the disk): not the API's, say nothing about ModelArts
        state.failing = True
        if not counts:
            return None
        state.consecutive_failures += 1
        if state.consecutive_failures >= self.outage_polls and not state.outage_notified:
            state.reachable = False
            state.outage_notified = True
            return Notice(
                kind="outage",
                target=state.name,
                text=(
                    f"Cannot reach ModelArts ({state.name}): {state.consecutive_failures} polls in a row failed "
                    f"({state.last_error}). Status alerts are paused until it answers again."
                ),
            )
        return None

    # -- one target --------------------------------------------------------------------------------

    async def _load(self, client: TargetClient, state: TargetHealth) -> dict[str, KnownService]:
        if state.known is None:
            stored = await self.store.target_state(state.name)
            state.watermark_ms = stored.watermark_ms
            state.baselined = stored.baselined
            state.outage_notified = await self.store.get_meta(f"outage:{state.name}") is not None
            state.full_listings_only = await self.store.get_meta(_ORDER_META + state.name)
            if state.full_listings_only:
                log.info("full listings every poll", extra={"target": state.name, "why": state.full_listings_only})
            state.known = await self.store.known_services(state.name)
        return state.known

    async def _poll_target(
        self, client: TargetClient, poll_id: str, scheduled: bool = True
    ) -> tuple[TargetPoll, list[Transition]]:
        state = self.targets[client.target.name]
        sent_before = client.requests_sent
        poll = TargetPoll(target=state.name, mode="full")
        try:
            stored = await self._poll_target_inner(client, state, poll, poll_id, scheduled)
        except StoreError as exc:  # our disk, not ModelArts: no outage notice; the next poll finds it all again
            self.errors += 1
            poll.ok = False
            poll.reason = "internal"
            poll.error = state.last_error = exc.message
            log.error("watcher poll not recorded", extra={"target": state.name, "error": exc.message})
            stored = []
        except ServicesBotError as exc:
            poll.ok = False
            detail = f" [{exc.details()}]" if isinstance(exc, ApiError) else ""
            poll.error = state.last_error = exc.message + detail
            log.warning("watcher poll failed", extra={"target": state.name, "error": poll.error})
            stored = []
        except Exception as exc:
            self.errors += 1
            poll.ok = False
            poll.reason = "internal"
            poll.error = state.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("watcher poll crashed", extra={"target": state.name})
            stored = []
        poll.requests = client.requests_sent - sent_before
        POLLS.labels(state.name, poll.mode, "ok" if poll.ok else "failed").inc()
        if poll.ok:
            LAST_POLL_SUCCESS.labels(state.name).set_to_current_time()
        for t in stored:
            TRANSITIONS.labels(t.to_status or "deleted", t.kind).inc()
        return poll, stored

    async def _poll_target_inner(
        self, client: TargetClient, state: TargetHealth, poll: TargetPoll, poll_id: str, scheduled: bool = True
    ) -> list[Transition]:
        known = await self._load(client, state)
        observed_at = datetime.now(UTC)
        rows: list[ListedService] | None = None
        if not state.baselined:
            poll.mode, poll.reason = "baseline", "fresh store"
        elif state.force_full:
            poll.reason = "start"
        elif state.full_listings_only:
            poll.reason = state.full_listings_only
        elif scheduled and state.polls_since_full + 1 >= self.resync_polls:
            poll.reason = "resync"
        else:
            try:
                rows = await self._recent_rows(client, state, known)
                poll.mode = "incremental"
            except _NeedsFullListing as why:
                poll.reason = str(why)
        complete = rows is None
        announce = await self._baseline_statuses() if poll.mode == "baseline" else None
        builder = DiffBuilder(
            known,
            complete=complete,
            target=state.name,
            project_id=client.target.project_id,
            observed_at=observed_at,
            announce=announce,
            cards_before=self.fleet.current(state.name),
        )
        gone: list[str] = []
        if rows is None:
            await self._list_everything(client, builder)
            poll.rows = builder.rows
            gone = await self._confirm_missing(client, builder, poll)
        else:
            builder.add(rows)
            poll.rows = builder.rows
        diff = builder.finish(gone, grouped=_is_mass(len(gone), len(known)))
        transitions, error_details = await self._with_errors(client, diff.transitions)
        poll.detail_requests += error_details
        watermark = _newer(builder.newest_ms, state.watermark_ms)
        stored = await self.store.record_poll(
            state.name,
            poll_id,
            diff.upserts,
            diff.deletions,
            transitions,
            watermark,
            baseline=poll.mode == "baseline",
        )
        # the commit succeeded: only now does the in-memory snapshot move
        for k in diff.upserts:
            known[k.service_id] = k
        for service_id in diff.deletions:
            known.pop(service_id, None)
        causes = {t.service_id: t.error_msg for t in transitions if t.error_msg}
        self.fleet.apply(
            state.name, builder.cards, complete=complete, deletions=diff.deletions, known=known, causes=causes
        )
        state.watermark_ms = watermark
        state.baselined = True
        if complete:
            state.force_full = False
            state.polls_since_full = 0
        elif scheduled:
            state.polls_since_full += 1
        if state.full_listings_only and complete and scheduled:
            state.distrusted_polls += 1
            if state.distrusted_polls % self.resync_polls == 0:
                await self._check_order_again(client, state, known)
        poll.transitions = len(stored)
        if stored or poll.mode != "incremental":
            log.info(
                "watcher poll",
                extra={"target": state.name, "mode": poll.mode, "rows": poll.rows, "transitions": len(stored)},
            )
        return stored

    async def _baseline_statuses(self) -> frozenset[str]:
        """A fresh store reports nothing, or (``notify_baseline``) the services already in a watched status."""
        if not self.notify_baseline:
            return frozenset()
        return frozenset(await self.store.watched_statuses())

    async def _with_errors(self, client: TargetClient, transitions: list[Transition]) -> tuple[list[Transition], int]:
        """List rows carry no ``error_msg`` (Q17): fetch details for up to ``detail_limit`` unhealthy arrivals.
        A detail that cannot be read leaves the message empty; it never fails the poll."""
        todo = [
            i
            for i, t in enumerate(transitions)
            if t.to_status in UNHEALTHY_STATUSES and not t.error_msg and t.kind != "deleted"
        ][: self.detail_limit]
        if not todo:
            return transitions, 0
        state = self.targets[client.target.name]
        details = await asyncio.gather(
            *(
                client.get_service(t.service_id, generation=_generation_of(state, t.service_id))
                for t in (transitions[i] for i in todo)
            ),
            return_exceptions=True,
        )
        out = list(transitions)
        for i, detail in zip(todo, details, strict=True):
            if isinstance(detail, Service) and detail.error_msg:
                out[i] = out[i].model_copy(update={"error_msg": detail.error_msg})
            elif isinstance(detail, BaseException) and not isinstance(detail, ServicesBotError):
                raise detail
        # an empty or generic error: the latest abnormal event names the cause, within the same request budget
        vague = [
            (i, d)
            for i, d in zip(todo, details, strict=True)
            if isinstance(d, Service) and is_generic_cause(d.error_msg)
        ][: max(0, self.detail_limit - len(todo))]
        causes = await asyncio.gather(*(latest_abnormal_cause(client, d) for _, d in vague), return_exceptions=True)
        for (i, _), cause in zip(vague, causes, strict=True):
            if isinstance(cause, str):  # an events call that fails leaves the alert as it was
                out[i] = out[i].model_copy(update={"error_msg": cause})
        return out, len(todo) + len(vague)

    def _workspaces(self, client: TargetClient) -> list[str | None]:
        return list(client.target.workspace_ids) or [None]

    async def _full_pages(
        self, client: TargetClient, members: dict[str, set[str]] | None = None
    ) -> AsyncIterator[list[ListedService]]:
        """A complete listing of every workspace of the target (every API generation it reads, each service
        once), a page at a time, in publish order (stable while statuses move)."""
        for ws in self._workspaces(client):
            params = ListParams(workspace_id=ws, sort_by="publish_at", order="asc")
            async with aclosing(client.iter_pages(params, members=members)) as pages:
                async for rows in pages:
                    yield rows

    async def _list_everything(self, client: TargetClient, builder: DiffBuilder) -> None:
        """The full listing handed to ``builder`` a page at a time, so only one page of parsed rows is held;
        which generation served which service is kept for the scans (``TargetHealth.members``)."""
        members: dict[str, set[str]] | None = {} if len(client.active) > 1 else None
        async with aclosing(self._full_pages(client, members)) as pages:
            async for rows in pages:
                builder.add(rows)
        self.targets[client.target.name].members = members or {}

    # -- confirming deletions ----------------------------------------------------------------------

    async def _confirm_missing(self, client: TargetClient, builder: DiffBuilder, poll: TargetPoll) -> list[str]:
        """The services missing from a complete listing that are really gone. Services deleted while the
        listing pages through offsets shift later rows back, so a live service can go unseen: each candidate
        is confirmed by its details (404), or, when there are more than ``confirm_limit`` or they are a mass
        disappearance, by a second listing first (then by details too if the rest fit in ``confirm_limit``)."""
        missing = builder.missing()
        if not missing:
            return []
        mass = _is_mass(len(missing), len(builder.known))
        if mass or len(missing) > self.confirm_limit:
            if mass:
                log.warning(
                    "many services missing from a listing; listing again before deleting any",
                    extra={"target": builder.target, "missing": len(missing), "known": len(builder.known)},
                )
            try:
                builder.add(await self._relist(client, set(missing)))
            except ServicesBotError as exc:
                self._unconfirmed(poll, builder.target, len(missing), exc)
                return []
            missing = builder.missing()
            if len(missing) > self.confirm_limit:
                return missing  # two complete listings agree; details for each would be a burst of requests
        return await self._confirm_by_details(client, builder, missing, poll)

    async def _relist(self, client: TargetClient, wanted: set[str]) -> list[ListedService]:
        """A second complete listing, keeping only the rows of ``wanted``: the services it shows are alive."""
        found: list[ListedService] = []
        async with aclosing(self._full_pages(client)) as pages:
            async for rows in pages:
                found += [row for row in rows if row.service_id in wanted]
        return found

    async def _confirm_by_details(
        self, client: TargetClient, builder: DiffBuilder, candidates: list[str], poll: TargetPoll
    ) -> list[str]:
        """Ask each candidate's details: 404 is gone; an answer is alive, and goes to the diff as its row (it
        may carry a real change); any other error keeps the service as it was until the next full listing."""
        if not candidates:
            return []
        poll.detail_requests += len(candidates)
        answers = await asyncio.gather(*(client.get_service(c) for c in candidates), return_exceptions=True)
        gone: list[str] = []
        failures: list[ServicesBotError] = []
        for service_id, answer in zip(candidates, answers, strict=True):
            if isinstance(answer, Service):
                builder.add([answer])
            elif isinstance(answer, ApiNotFoundError):
                gone.append(service_id)
            elif isinstance(answer, ServicesBotError):
                failures.append(answer)
            else:
                raise answer
        if failures:
            self._unconfirmed(poll, builder.target, len(failures), failures[0])
        return gone

    @staticmethod
    def _unconfirmed(poll: TargetPoll, target: str, count: int, error: ServicesBotError) -> None:
        poll.unconfirmed += count
        log.warning(
            "could not confirm that missing services are gone; kept until the next full listing",
            extra={"target": target, "services": count, "error": error.message},
        )

    async def _recent_rows(
        self, client: TargetClient, state: TargetHealth, known: dict[str, KnownService]
    ) -> list[ListedService]:
        """Rows changed since the watermark (minus the overlap), newest first, for every workspace."""
        if state.watermark_ms is None:
            raise _NeedsFullListing("no watermark")
        floor = state.watermark_ms - self.overlap_ms
        # room for twice what the last scan found, so a steady churn still fits in one request
        first = min(client.page_limit, max(self.first_page, 2 * state.recent_rows))
        rows: list[ListedService] = []
        listed_total = 0
        heads: list[_FirstPage] = []
        sources = client.active
        several = len(sources) > 1
        try:
            if not state.order_checked:
                await self._probe_order(client)
                state.order_checked = True
            for found, total, head in await self._newest_first_scans(client, state, floor, first):
                rows += found
                listed_total += total
                heads.append(head)
        except _OutOfOrder:
            await self._distrust_order(state)
            raise
        state.recent_rows = len(rows)
        unseen = len({r.service_id for r in rows} - known.keys())
        if listed_total != len(known) + _overlap(state, known) + unseen:
            raise _NeedsFullListing("service count changed")
        await self._check_heads(state, known, heads)
        unique: dict[str, ListedService] = {}
        first = sources[0].generation
        for row in rows:
            if several and row.generation != first and row.service_id in state.members.get(first, ()):
                continue  # a service v1 reports too: its v1 row speaks for it, as in a full listing
            unique.setdefault(row.service_id, row)
        if several:
            for row in rows:
                state.members.setdefault(row.generation, set()).add(row.service_id)
        return list(unique.values())

    async def _newest_first_scans(
        self, client: TargetClient, state: TargetHealth, floor: int, first: int
    ) -> list[tuple[list[ListedService], int, _FirstPage]]:
        """Every generation and workspace scanned newest first down to ``floor`` (``_scan_workspace``), at once, so a
        poll (and an answer waiting for one) costs one API round trip, not one per scan: per scan its rows, its
        ``total_count`` and its first page. Results are taken in order, as a sequential scan would: the first
        scan that failed raises."""
        sources = client.active
        several = len(sources) > 1
        scans = [
            (source, ListParams(workspace_id=ws, sort_by="transition_at", order="desc"), [])
            for source in sources
            for ws in self._workspaces(client)
        ]
        results = await asyncio.gather(
            *(
                self._scan_workspace(
                    source, params, floor, first, found, _speaks_for(state, sources, source) if several else None
                )
                for source, params, found in scans
            ),
            return_exceptions=True,
        )
        out: list[tuple[list[ListedService], int, _FirstPage]] = []
        for (_source, _params, found), result in zip(scans, results, strict=True):
            if isinstance(result, BaseException):
                raise result
            total, head = result
            out.append((found, total, head))
        return out

    async def _check_heads(self, state: TargetHealth, known: dict[str, KnownService], heads: list[_FirstPage]) -> None:
        """Check the first pages against what we know (``_FirstPage.misses``). A miss can also be a deleted
        service (the count check cannot see a deletion and an arrival together), so one miss only takes a
        full listing now, and a miss in the next scan too says the server does not sort as asked."""
        if not any(head.misses(known.values()) for head in heads):
            state.order_suspect = False
            return
        if state.order_suspect:
            await self._distrust_order(state)
            raise _NeedsFullListing(ORDER_UNRELIABLE)
        state.order_suspect = True
        raise _NeedsFullListing("a known recent change is missing from the newest-first page")

    async def _probe_order(self, client: TargetClient) -> None:
        """Once a run, before the first scan is trusted: one page oldest-changed first must come in that order.
        The newest rows of a fleet are often newest by publish time too (services deployed and not changed
        since), so a server sorting by ``publish_at`` can give a newest-first page that looks right; the
        oldest-changed rows are where the two orders part."""
        for source in client.active:
            for ws in self._workspaces(client):
                params = ListParams(workspace_id=ws, sort_by="transition_at", order="asc")
                page = await source.list_page(params, offset=0, limit=self.first_page)
                times = [m for m in (to_ms(s.transition_at) for s in page.services) if m is not None]
                if not _newest_first(times[::-1], None):
                    raise _OutOfOrder()

    async def _distrust_order(self, state: TargetHealth) -> None:
        """From now on (and after a restart: it is kept in the store) the target gets a full listing every
        poll, since a scan that trusts a wrong order misses changes until the next resync."""
        state.order_checked = False
        state.order_passes = state.distrusted_polls = 0
        if state.full_listings_only:
            return
        state.full_listings_only = ORDER_UNRELIABLE
        await self.store.set_meta(_ORDER_META + state.name, ORDER_UNRELIABLE)
        log.warning(
            "ModelArts does not answer sort_by=transition_at newest first; full listings every poll from now on",
            extra={"target": state.name},
        )

    async def _check_order_again(
        self, client: TargetClient, state: TargetHealth, known: dict[str, KnownService]
    ) -> None:
        """After a committed full listing of a distrusted target: the checks a run's first scan makes, and each
        newest-first first page against the state just listed. Passes are counted (``ORDER_PASSES`` in a row
        trust the order again); an API error counts for nothing either way, and never fails the poll."""
        try:
            await self._probe_order(client)
            scans = await self._newest_first_scans(client, state, _NO_FLOOR, self.first_page)  # first pages only
        except ServicesBotError as exc:
            log.info("order check put off", extra={"target": state.name, "error": exc.message})
            return
        except _NeedsFullListing as why:
            passed = False
            reason = str(why)
        else:
            passed = not any(head.misses(known.values()) for _rows, _total, head in scans)
            reason = "a known recent change is missing from the newest-first page"
        if not passed:
            state.order_passes = 0
            log.info("order still unreliable", extra={"target": state.name, "why": reason})
            return
        state.order_passes += 1
        if state.order_passes < ORDER_PASSES:
            log.info("order honoured", extra={"target": state.name, "passes": state.order_passes})
            return
        try:
            await self.store.set_meta(_ORDER_META + state.name, None)
        except StoreError as exc:  # the poll itself is committed; trusting the order again waits for the next check
            log.error("order trusted, not recorded", extra={"target": state.name, "error": exc.message})
            state.order_passes -= 1
            return
        state.full_listings_only = None
        state.order_checked = True
        state.order_passes = state.distrusted_polls = 0
        log.warning(
            "ModelArts answers sort_by=transition_at newest first again; incremental polls from now on",
            extra={"target": state.name},
        )

    async def _scan_workspace(
        self,
        client: ModelArtsClient,
        params: ListParams,
        floor: int,
        first: int,
        rows: list[ListedService],
        members: set[str] | None = None,
    ) -> tuple[int, _FirstPage]:
        """Page one API generation newest first (v1 ``sort_by=transition_at&order=desc``, v2
        ``sort_key=update_at&sort_dir=DESC``) until a row is older than ``floor``; returns the listing's
        ``total_count`` and its first page. Every page read is checked whole for newest-first order, rows past
        the stop included."""
        limit = first
        covered = 0
        total: int | None = None
        head: _FirstPage | None = None
        previous_ms: int | None = None
        while True:
            if covered and client.offset_mode is None:
                raise _NeedsFullListing("offset reading unknown")
            offset = covered // limit if client.offset_mode == "page" else covered
            page = await client.list_page(params, offset=offset, limit=limit)
            if total is None:
                if page.total_count is None:
                    raise _NeedsFullListing("no total_count")
                total = page.total_count
            times = [m for m in (to_ms(s.transition_at) for s in page.services) if m is not None]
            if not _newest_first(times, previous_ms):
                raise _OutOfOrder()
            previous_ms = times[-1] if times else previous_ms
            if head is None:
                ids = frozenset(s.service_id for s in page.services)
                oldest = min(times, default=None)
                head = _FirstPage(params.workspace_id, ids, oldest, len(page.services) == limit, members)
            for service in page.services:
                moment = to_ms(service.transition_at)
                if moment is None:
                    raise _NeedsFullListing("rows without transition_at")
                if moment < floor:
                    return total, head
                rows.append(service)
            if len(page.services) < limit and covered + len(page.services) < total:
                raise _NeedsFullListing("the server served fewer rows than asked")  # a cap: the full listing adapts
            covered += limit
            if len(page.services) < limit or covered >= total:
                return total, head
            if covered * 2 > total:
                raise _NeedsFullListing("most of the fleet changed")
            if covered % (limit * 2) == 0 and limit * 2 <= client.page_limit:
                limit *= 2  # the pages read so far end on a multiple of the doubled size, in either offset reading


def _newest_first(times: list[int], previous: int | None) -> bool:
    """True if ``times`` never increase, starting from ``previous`` (the last time of the page before)."""
    start = [] if previous is None else [previous]
    return all(a >= b for a, b in pairwise([*start, *times]))


def _overlap(state: TargetHealth, known: dict[str, KnownService]) -> int:
    """Known services that both generations report: each generation's ``total`` counts them."""
    if len(state.members) < 2:
        return 0
    return len(set.intersection(*state.members.values()) & known.keys())


def _speaks_for(state: TargetHealth, sources: list[ModelArtsClient], source: ModelArtsClient) -> set[str]:
    """The services whose known state came from ``source``'s rows: those it reports that no generation before it
    does (a full listing keeps the first generation's row). Only those must be on its newest-first page: a
    shared service's time there is the other generation's."""
    earlier = [g.generation for g in sources[: sources.index(source)]]
    return state.members.get(source.generation, set()).difference(*(state.members.get(g, set()) for g in earlier))


def _generation_of(state: TargetHealth, service_id: str) -> str | None:
    """The one generation that reports a service, when only one does (its details are asked there alone)."""
    found = [gen for gen, ids in state.members.items() if service_id in ids]
    return found[0] if len(found) == 1 else None


def _is_mass(missing: int, known: int) -> bool:
    """Too many services gone at once to be believed from one listing (``MASS_SHARE``, ``MASS_MIN``)."""
    return missing >= MASS_MIN and missing > MASS_SHARE * known


def _newer(moment: int | None, previous: int | None) -> int | None:
    if moment is None:
        return previous
    return moment if previous is None or moment > previous else previous
