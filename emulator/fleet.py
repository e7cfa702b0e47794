"""The simulated fleet: services, their deterministic generation, and the indexes the list API reads.

Speed matters here: tests start a 25 000-service emulator per session and the benchmarks use 100 000, so
generation keeps to cheap per-service work (one shared RNG, slotted objects, no uuid module) and everything
only the details API needs (configs, nodes, network ids) is derived lazily from a per-service seed the first
time it is asked for. The derived parts are cached on the service, so a service looks the same every time.

Listing does not re-sort the fleet per request: ``Fleet.ordered`` keeps one ascending order per sort key
(ties broken by ``service_id``) that is rebuilt only when a change can move a service in that order, and
``Fleet.select`` memoises filtered orders until the fleet's ``version`` moves.
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Hashable, Iterable
from operator import attrgetter
from typing import Any

from services_bot.emulator import words
from services_bot.emulator.generations import V2_TO_V1, initial_v2_status, pick_generation, v1_reading, v2_reading

YEAR_MS = 365 * 86_400_000
HOUR_MS = 3_600_000

STATUSES: tuple[str, ...] = (
    "running",
    "deploying",
    "concerning",
    "failed",
    "stopped",
    "finished",
    "stopping",
    "deleting",
    "pending",
    "waiting",
)
INFER_TYPES: tuple[str, ...] = ("real-time", "batch", "edge")
SORT_KEYS: tuple[str, ...] = ("publish_at", "service_name", "transition_at")
#: every attribute the fleet keeps a sorted order of: v1's sort keys and v2's
ORDER_KEYS: tuple[str, ...] = (*SORT_KEYS, "create_at", "update_at")
DEFAULT_WORKSPACE = "0"

# Cumulative status distributions per inference type. pending/waiting are real-time only (LIST-2025 wording),
# finished is batch only.
_STATUS_WEIGHTS: dict[str, tuple[tuple[str, float], ...]] = {
    "real-time": (
        ("running", 70),
        ("stopped", 13),
        ("failed", 4),
        ("concerning", 3),
        ("deploying", 4),
        ("stopping", 1),
        ("deleting", 1),
        ("pending", 2),
        ("waiting", 2),
    ),
    "batch": (
        ("finished", 45),
        ("running", 25),
        ("stopped", 12),
        ("failed", 7),
        ("deploying", 6),
        ("stopping", 3),
        ("deleting", 2),
    ),
    "edge": (
        ("running", 72),
        ("stopped", 12),
        ("failed", 5),
        ("deploying", 5),
        ("concerning", 4),
        ("stopping", 1),
        ("deleting", 1),
    ),
}


def _cumulative(pairs: tuple[tuple[str, float], ...]) -> tuple[tuple[float, str], ...]:
    total = sum(w for _, w in pairs)
    acc = 0.0
    out = []
    for name, w in pairs:
        acc += w / total
        out.append((acc, name))
    return tuple(out)


_STATUS_CDF = {k: _cumulative(v) for k, v in _STATUS_WEIGHTS.items()}
_WEIGHT_SPLITS: dict[int, tuple[tuple[int, ...], ...]] = {
    1: ((100,),),
    2: ((50, 50), (70, 30), (80, 20), (90, 10)),
    3: ((34, 33, 33), (60, 20, 20), (50, 30, 20)),
}
_SCHEDULES: tuple[tuple[int, str, int], ...] = (
    # duration, time_unit, milliseconds per unit
    (2, "HOURS", HOUR_MS),
    (8, "HOURS", HOUR_MS),
    (24, "HOURS", HOUR_MS),
    (90, "MINUTES", 60_000),
    (3, "DAYS", 86_400_000),
    (7, "DAYS", 86_400_000),
)

_UNIT_MS = {unit: ms for _, unit, ms in _SCHEDULES}


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds, the unit of every timestamp the API documents."""
    return time.time_ns() // 1_000_000


def hex32(rng: random.Random) -> str:
    """A 32-hex-digit id (owner, tenant, workspace ids look like this)."""
    return f"{rng.getrandbits(128):032x}"


def uuid4_str(rng: random.Random) -> str:
    """A version-4 UUID string from ``rng`` (deterministic, and much cheaper than ``uuid.UUID``)."""
    h = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(h[16], 16) & 3]
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{variant}{h[17:20]}-{h[20:]}"


class Service:
    """One inference service. Plain attributes; the API modules turn it into the documented JSON shapes.

    ``row``/``legacy_row``/``v2_row`` cache the encoded list rows and are cleared on every change
    (``Fleet.changed``). ``detail`` holds lazily derived, status-independent details (see ``detail_extras``).
    ``generation`` says which paths show the service (``generations.py``); ``status`` is always its v1
    reading and ``v2_status`` (v2 and both services only) what the v2 paths show. ``create_at`` never moves;
    ``update_at`` (v2's update time) moves on every change.
    """

    __slots__ = (
        "additional_properties",
        "create_at",
        "description",
        "detail",
        "detail_seed",
        "due_time",
        "error_msg",
        "failed_times",
        "finished_time",
        "generation",
        "infer_type",
        "invocation_times",
        "is_free",
        "is_shared",
        "legacy_row",
        "models",
        "name_lower",
        "operation_time",
        "owner",
        "progress",
        "project",
        "publish_at",
        "row",
        "sample_collection",
        "schedule",
        "service_id",
        "service_name",
        "shared_count",
        "start_time",
        "status",
        "tags",
        "tenant",
        "transition_at",
        "update_at",
        "update_time",
        "v2_row",
        "v2_status",
        "workspace_id",
    )

    def __init__(self) -> None:
        self.row: bytes | None = None
        self.legacy_row: bytes | None = None
        self.v2_row: bytes | None = None
        self.generation = "v1"
        self.v2_status: str | None = None
        self.create_at = 0
        self.update_at = 0
        self.detail: dict[str, Any] | None = None
        self.error_msg: str | None = None
        self.schedule: tuple[int, str] | None = None
        self.due_time: int | None = None
        self.additional_properties: dict[str, str] | None = None
        self.start_time: int | None = None
        self.finished_time: int | None = None
        self.service_id = ""
        self.service_name = ""
        self.name_lower = ""
        self.description = ""
        self.workspace_id = DEFAULT_WORKSPACE
        self.infer_type = "real-time"
        self.status = "running"
        self.progress = 100
        self.publish_at = 0
        self.transition_at = 0
        self.update_time = 0
        self.operation_time = 0
        self.invocation_times = 0
        self.failed_times = 0
        self.is_shared = False
        self.shared_count = 0
        self.is_free = False
        self.sample_collection = False
        self.owner = ""
        self.tenant = ""
        self.project = ""
        self.tags: dict[str, str] = {}
        # (model_id, model_name, model_version, weight)
        self.models: list[tuple[str, str, str, int]] = []
        self.detail_seed = 0

    def __repr__(self) -> str:
        return f"Service({self.service_id!r}, {self.service_name!r}, {self.status!r})"


class FleetGenerator:
    """Deterministic source of services for one (seed, project): the initial fleet and later arrivals.

    All randomness comes from one ``random.Random(seed)``, so the same (services, seed) gives the same
    fleet; timestamps are relative to ``anchor_ms``.
    """

    def __init__(self, seed: int, project_id: str, workspaces: int, anchor_ms: int, generations: str = "v1") -> None:
        self.rng = random.Random(seed)
        # generations and v2 statuses come from a stream of their own, so a v1 fleet is what it always was
        self.generations = generations
        self.gen_rng = random.Random(f"{seed}-generations")
        self.anchor_ms = anchor_ms
        self.project_id = project_id
        r = self.rng
        self.tenant = hex32(r)
        self.owners = [hex32(r) for _ in range(5)]
        self.workspace_ids = [hex32(r) for _ in range(workspaces)]
        self._used_names: dict[str, int] = {}
        self._default_names: list[str] = []
        self._model_pools: dict[tuple[str, str], list[tuple[str, str, str]]] = {}

    # -- names -------------------------------------------------------------------------------------------
    def _name(self, team: str, purpose: str, env: str) -> str:
        r = self.rng.random
        x = r()
        if x < 0.35:
            base = f"{team}-{purpose}-{env}"
        elif x < 0.55:
            base = f"{team}-{purpose}-v{2 + int(r() * 4)}"
        elif x < 0.75:
            base = f"{team}-{purpose}-{env}-{words.REGIONS[int(r() * len(words.REGIONS))]}"
        elif x < 0.9:
            base = f"{team}-{purpose}-v{2 + int(r() * 4)}-{env}"
        else:
            base = f"{team}-{purpose}"
        n = self._used_names.get(base, 0) + 1
        self._used_names[base] = n
        return base if n == 1 else f"{base}-{n}"

    def _model(self, team: str, purpose: str) -> tuple[str, str, str]:
        r = self.rng
        pool = self._model_pools.setdefault((team, purpose), [])
        if pool and (len(pool) >= 40 or r.random() < 0.6):
            return pool[int(r.random() * len(pool))]
        suffix = words.MODEL_SUFFIXES[int(r.random() * len(words.MODEL_SUFFIXES))]
        version = f"{1 + int(r.random() * 3)}.{int(r.random() * 10)}.{int(r.random() * 10)}"
        model = (uuid4_str(r), f"{team}-{purpose}-{suffix}", version)
        pool.append(model)
        return model

    # -- services ----------------------------------------------------------------------------------------
    def make(
        self,
        *,
        status: str | None = None,
        infer_type: str | None = None,
        workspace_id: str | None = None,
        service_name: str | None = None,
        service_id: str | None = None,
        model_id: str | None = None,
        tags: dict[str, str] | None = None,
        error_msg: str | None = None,
        fresh_at: int | None = None,
        generation: str | None = None,
    ) -> Service:
        """Generate one service. Keyword arguments pin fields; ``fresh_at`` makes it newly published then.

        ``status`` may be given in either vocabulary (``generations.py``); a v2 or both service is real-time,
        since v2 has no batch or edge services.
        """
        rng = self.rng
        r = rng.random
        anchor = self.anchor_ms
        s = Service()
        gen = generation or pick_generation(self.gen_rng, self.generations)
        s.generation = gen
        s.service_id = service_id or uuid4_str(rng)
        team, purposes = words.DOMAINS[int(r() * len(words.DOMAINS))]
        purpose = purposes[int(r() * len(purposes))]
        env = words.ENVS[int(r() * len(words.ENVS))]

        x = r()
        it = infer_type or ("real-time" if x < 0.8 else "batch" if x < 0.95 else "edge")
        if gen != "v1":
            it = "real-time"
        s.infer_type = it
        if workspace_id is None:
            if not self.workspace_ids or r() < 0.5:
                workspace_id = DEFAULT_WORKSPACE
            else:
                workspace_id = self.workspace_ids[int(r() * len(self.workspace_ids))]
        s.workspace_id = workspace_id
        if service_name is None:
            if workspace_id != DEFAULT_WORKSPACE and self._default_names and r() < 0.01:
                # the same name in another workspace: name resolution has to cope with ambiguity
                service_name = self._default_names[int(r() * len(self._default_names))]
            else:
                service_name = self._name(team, purpose, env)
        if workspace_id == DEFAULT_WORKSPACE and len(self._default_names) < 5000:
            self._default_names.append(service_name)
        s.service_name = service_name
        s.name_lower = service_name.lower()
        desc = words.DESCRIPTIONS[int(r() * len(words.DESCRIPTIONS))]
        s.description = desc.format(team=team, purpose=purpose, env=env) if "{" in desc else desc

        if status is None:
            y = r()
            for edge, name in _STATUS_CDF.get(it, _STATUS_CDF["real-time"]):
                if y <= edge:
                    status = name
                    break
            else:
                status = "running"
            if gen != "v1":
                s.v2_status = initial_v2_status(status, self.gen_rng)
                status = V2_TO_V1[s.v2_status]
        else:
            if gen != "v1":
                s.v2_status = v2_reading(status)
            status = v1_reading(status, gen)
        s.status = status

        # times: everything lies before the anchor (or at fresh_at for a service that appears now)
        if fresh_at is not None:
            s.publish_at = fresh_at
            s.transition_at = fresh_at
        elif status in ("deploying", "pending", "waiting"):
            s.publish_at = anchor - 60_000 - int(r() * HOUR_MS)
            s.transition_at = s.publish_at
        else:
            s.publish_at = anchor - HOUR_MS - int(r() * YEAR_MS)
            span = anchor - s.publish_at
            if status == "running" and r() < 0.7:
                s.transition_at = s.publish_at + 60_000 + int(r() * 540_000)  # deployed after 1-10 minutes
            else:
                s.transition_at = s.publish_at + int(r() * span)
        s.update_time = s.publish_at + int(r() * 300_000) if fresh_at is None else fresh_at
        s.operation_time = max(s.transition_at, s.update_time)
        s.create_at = s.publish_at
        s.update_at = s.operation_time

        young = status in ("deploying", "pending", "waiting") or fresh_at is not None
        if young:
            s.invocation_times = 0
            s.failed_times = 0
        else:
            s.invocation_times = int(10 ** (r() * 7))
            s.failed_times = int(s.invocation_times * r() * 0.02)
        if status == "deploying":
            s.progress = 0 if fresh_at is not None else int(r() * 100)
        elif status in ("pending", "waiting"):
            s.progress = 0
        elif status == "failed":
            s.progress = int(r() * 100)
        else:
            s.progress = 100
        if it == "batch" and status not in ("deploying", "pending", "waiting"):
            if fresh_at is not None:
                s.start_time = fresh_at
                s.finished_time = fresh_at if status == "finished" else None
            else:
                s.start_time = s.publish_at + 30_000 + int(r() * 120_000)
                if status == "finished":
                    s.finished_time = max(s.transition_at, s.start_time + 1000)
                    s.transition_at = s.finished_time

        s.is_shared = r() < 0.03
        s.shared_count = 0 if s.is_shared or r() > 0.05 else 1 + int(r() * 12)
        s.is_free = r() < 0.05
        s.sample_collection = r() < 0.1
        s.owner = self.owners[int(r() * len(self.owners))]
        s.tenant = self.tenant
        s.project = self.project_id

        if it == "real-time" and status in ("running", "concerning", "deploying") and r() < 0.06:
            duration, unit, unit_ms = _SCHEDULES[int(r() * len(_SCHEDULES))]
            s.schedule = (duration, unit)
            due = s.transition_at + duration * unit_ms
            s.due_time = due if due > anchor else anchor + int(r() * duration * unit_ms)
        if r() < 0.1:
            s.additional_properties = {
                "log_report_channels": "LTS",
                "smn_topic_urn": f"urn:smn:cn-north-4:{s.project}:{s.service_name}-alerts",
            }

        tag_map = {"team": team, "env": env}
        if r() < 0.3:
            tag_map["cost-center"] = f"cc-{1000 + 7 * len(team) + len(purpose)}"
        if r() < 0.1:
            tag_map["owner"] = f"{team}-oncall"
        s.tags = tag_map if tags is None else dict(tags)

        y = r()
        n_models = 1 if y < 0.75 else 2 if y < 0.95 else 3
        splits = _WEIGHT_SPLITS[n_models]
        weights = splits[int(r() * len(splits))]
        models: list[tuple[str, str, str, int]] = []
        seen: set[str] = set()
        for i in range(n_models):
            mid, mname, mver = self._model(team, purpose)
            if mid in seen:
                continue
            seen.add(mid)
            models.append((mid, mname, mver, weights[i]))
        if len(models) != n_models:  # a pooled model came twice: give it the whole traffic share
            total = sum(m[3] for m in models)
            models = [(m[0], m[1], m[2], m[3] + (100 - total if i == 0 else 0)) for i, m in enumerate(models)]
        if model_id is not None:
            models = [(model_id, models[0][1], models[0][2], 100)]
        s.models = models

        if status == "failed":
            s.error_msg = error_msg or self.failure_message(s)
        elif error_msg:
            s.error_msg = error_msg
        s.detail_seed = rng.getrandbits(32)
        return s

    def failure_message(self, s: Service, rng: random.Random | None = None) -> str:
        """A realistic cause for a failed service, formatted from the word lists."""
        r = rng or self.rng
        templates = (
            words.FAILURES_BATCH
            if s.infer_type == "batch"
            else words.FAILURES_EDGE + words.FAILURES_REALTIME[:3]
            if s.infer_type == "edge"
            else words.FAILURES_REALTIME
        )
        t = templates[int(r.random() * len(templates))]
        model = s.models[0] if s.models else ("", s.service_name, "1.0.0", 100)
        return t.format(
            team=s.tags.get("team", "ml"),
            name=model[1],
            version=model[2],
            hex4=f"{r.getrandbits(16):04x}",
            n=1 + int(r.random() * 8),
            spec=words.SPECIFICATIONS[int(r.random() * (len(words.SPECIFICATIONS) - 1))],
            mem=(4096, 8192, 16384)[int(r.random() * 3)],
            node=f"edge-node-{r.getrandbits(12):03x}",
        )

    def generate(self, n: int) -> list[Service]:
        """The initial fleet of ``n`` services."""
        make = self.make
        return [make() for _ in range(n)]


class Fleet:
    """All services plus the cached orders the list API pages through.

    Every mutation goes through ``add``, ``remove`` or ``changed`` so that the version counters (and with
    them every cached order and encoded row) stay right.
    """

    def __init__(self, generator: FleetGenerator, services: Iterable[Service]) -> None:
        self.generator = generator
        self.by_id: dict[str, Service] = {}
        self.items: list[Service] = []  # arbitrary order, for O(1) random picks
        self._pos: dict[str, int] = {}
        self.version = 0
        self._membership = 0
        self._order_ver = dict.fromkeys(ORDER_KEYS, 0)
        self.by_generation: dict[str, int] = {"v1": 0, "v2": 0, "both": 0}
        self._by_id_sorted: tuple[int, list[Service]] | None = None
        self._orders: dict[str, tuple[tuple[int, ...], list[Service]]] = {}  # sort_by -> (key versions, order)
        self._select_cache: dict[Hashable, tuple[int, list[Service]]] = {}
        self._select_version = 0
        for s in services:
            self._insert(s)

    def __len__(self) -> int:
        return len(self.items)

    def get(self, service_id: str) -> Service | None:
        return self.by_id.get(service_id)

    # -- mutation ----------------------------------------------------------------------------------------
    def _insert(self, s: Service) -> None:
        if s.service_id in self.by_id:
            raise KeyError(s.service_id)
        self.by_id[s.service_id] = s
        self.by_generation[s.generation] += 1
        self._pos[s.service_id] = len(self.items)
        self.items.append(s)

    def add(self, s: Service) -> None:
        self._insert(s)
        self._membership_changed()

    def remove(self, service_id: str) -> Service:
        s = self.by_id.pop(service_id)
        self.by_generation[s.generation] -= 1
        i = self._pos.pop(service_id)
        last = self.items.pop()
        if last is not s:
            self.items[i] = last
            self._pos[last.service_id] = i
        self._membership_changed()
        return s

    def _membership_changed(self) -> None:
        self._membership += 1
        for k in self._order_ver:
            self._order_ver[k] += 1
        self.version += 1

    def changed(self, s: Service, moved: Iterable[str] = (), old: dict[str, Any] | None = None) -> None:
        """Record that ``s`` changed; ``moved`` names the sort keys whose value changed, ``old`` their values
        before the change where known (then a cached order is mended in place instead of sorted again)."""
        s.row = None
        s.legacy_row = None
        s.v2_row = None
        for k in moved:
            if old is not None and k in old:
                self._move_in_order(s, k, old[k])
            else:
                self._order_ver[k] += 1
        self.version += 1

    def _move_in_order(self, s: Service, key: str, old_value: Any) -> None:
        """Move ``s`` to its new place in the cached ascending order by ``key`` (ties by ``service_id``): a
        binary search and a memmove rather than a re-sort, which matters for v2's default ``update_at`` order,
        which every change moves."""
        cached = self._orders.get(key)
        self._order_ver[key] += 1
        if cached is None or cached[0] != (self._order_ver[key] - 1,):
            return
        lst = cached[1]
        by = attrgetter(key, "service_id")
        i = bisect_left(lst, (old_value, s.service_id), key=by)
        if i >= len(lst) or lst[i] is not s:
            return  # not where it should have been: leave the order to a full re-sort
        del lst[i]
        insort(lst, s, key=by)
        self._orders[key] = ((self._order_ver[key],), lst)

    def set_status(
        self,
        s: Service,
        status: str,
        at_ms: int,
        *,
        error_msg: str | None = None,
        progress: int | None = None,
        redeploy: bool = False,
        rng: random.Random | None = None,
    ) -> str:
        """Move ``s`` to ``status`` at ``at_ms`` and keep the dependent fields coherent; returns the old status
        as the service shows it (``shown_status``).

        ``status`` may be in either vocabulary: it is read for the service's generation (``generations.py``).
        ``transition_at`` and ``update_at`` become the real time of the change. ``error_msg`` (a v2 service's
        ``failure_reason``) is set when entering ``failed`` (v2: FAILED or ERROR; a generated cause if none is
        given) and cleared on leaving it. ``redeploy`` marks a new release (``publish_at``/``update_time``
        move too), as when a stopped or failed service is deployed again.
        """
        old_shown = shown_status(s)
        old = s.status
        before = {"transition_at": s.transition_at, "update_at": s.update_at, "publish_at": s.publish_at}
        if s.generation != "v1":
            s.v2_status = v2_reading(status)
        status = v1_reading(status, s.generation)
        s.status = status
        s.update_at = at_ms
        s.transition_at = at_ms
        s.operation_time = at_ms
        if status == "failed":
            s.error_msg = error_msg or self.generator.failure_message(s, rng)
        else:
            s.error_msg = error_msg
        if progress is not None:
            s.progress = progress
        elif (status == "deploying" and old != "deploying") or status in ("pending", "waiting"):
            s.progress = 0
        elif status == "running" and old in ("deploying", "pending", "waiting"):
            s.progress = 100
        if s.infer_type == "batch":
            if status in ("deploying", "pending", "waiting"):
                s.start_time = None
                s.finished_time = None
            elif status == "running" and s.start_time is None:
                s.start_time = at_ms
            elif status == "finished":
                s.finished_time = at_ms
        if s.schedule is not None and status == "running" and old != "concerning":
            duration, unit = s.schedule
            s.due_time = at_ms + duration * _UNIT_MS.get(unit, HOUR_MS)
        moved = ["transition_at", "update_at"]
        if redeploy:
            s.publish_at = at_ms
            s.update_time = at_ms
            moved.append("publish_at")
        self.changed(s, moved, before)
        return old_shown

    def clear_encoded(self) -> None:
        """Forget every encoded row (the quirks that shape rows changed)."""
        for s in self.items:
            s.row = None
            s.legacy_row = None
            s.v2_row = None

    # -- reading -----------------------------------------------------------------------------------------
    def ordered(self, sort_by: str) -> list[Service]:
        """All services ascending by ``sort_by`` (one of ``ORDER_KEYS``, or several joined by commas, compared
        in turn), ties by ``service_id``; cached until the order can change."""
        keys = sort_by.split(",")
        v = tuple(self._order_ver[k] for k in keys)
        cached = self._orders.get(sort_by)
        if cached is not None and cached[0] == v:
            return cached[1]
        if self._by_id_sorted is None or self._by_id_sorted[0] != self._membership:
            self._by_id_sorted = (self._membership, sorted(self.items, key=attrgetter("service_id")))
        # a stable sort of the id-sorted list: equal keys stay in service_id order
        lst = sorted(self._by_id_sorted[1], key=attrgetter(*keys))
        self._orders[sort_by] = (v, lst)
        return lst

    def select(
        self,
        key: Hashable,
        sort_by: str,
        descending: bool,
        keep: Callable[[Service], bool] | None,
        workspace_id: str | None,
        generation: str = "v1",
    ) -> list[Service]:
        """The services the ``generation`` ("v1" or "v2") paths show that pass ``workspace_id`` and ``keep``,
        in order; memoised per fleet version."""
        key = (generation, key)
        if self._select_version != self.version:
            # every memoised result is stale now: drop them all rather than keep up to N dead lists alive
            self._select_cache.clear()
            self._select_version = self.version
        cached = self._select_cache.get(key)
        if cached is not None:
            return cached[1]
        base = self.ordered(sort_by)
        unseen = "v2" if generation == "v1" else "v1"  # "both" services are seen on either path
        if not self.by_generation[unseen]:
            lst = base if workspace_id is None else [s for s in base if s.workspace_id == workspace_id]
        elif workspace_id is None:
            lst = [s for s in base if s.generation != unseen]
        else:  # one pass for both conditions: this runs over the whole fleet after every change
            lst = [s for s in base if s.workspace_id == workspace_id and s.generation != unseen]
        if keep is not None:
            lst = [s for s in lst if keep(s)]
        if descending:
            lst = lst[::-1]
        elif lst is base:
            lst = list(base)
        if len(self._select_cache) >= 64:
            self._select_cache.clear()
        self._select_cache[key] = (self.version, lst)
        return lst


def default_anchor_ms() -> int:
    """Start of the current UTC day: generated timestamps are stable for a day, yet always recent."""
    now = now_ms()
    return now - now % 86_400_000


def shown_status(s: Service) -> str:
    """The status as the service's own generation shows it: v2's upper-case one for v2 and both services."""
    return s.v2_status if s.generation != "v1" and s.v2_status is not None else s.status


def visible_on(s: Service, generation: str) -> bool:
    """Whether the ``generation`` ("v1" or "v2") paths show ``s``."""
    return s.generation == generation or s.generation == "both"


def build_fleet(
    services: int, seed: int, project_id: str, workspaces: int, anchor_ms: int | None, generations: str = "v1"
) -> Fleet:
    """Generate a fleet of ``services`` services, deterministic for (services, seed, anchor, generations)."""
    anchor = anchor_ms if anchor_ms is not None else default_anchor_ms()
    gen = FleetGenerator(seed, project_id, workspaces, anchor, generations)
    fleet = Fleet(gen, gen.generate(services))
    fleet.ordered("publish_at")  # the default sort, ready before the first request (~0.1 s at 100k)
    return fleet
