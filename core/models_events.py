"""Wire models of a service's events, monitoring and update logs (v1 and v2), and the product's shapes for them.

The "why" of an outage lives in three v1 endpoints (``/events``, ``/monitor``, ``/logs``) and, on v2, in the
event list plus the deployment and instance counts (v2 has no monitor). The wire models here accept what the
documents show (``spec/v1-service-events-monitor-logs.md``, ``spec/v2-service-events.md``): monitor figures as
strings in the 2024 example (M1), every field absent, v2 events aggregated with a count. They then become three
product shapes every surface renders: ``Event``, ``UpdateLog`` and ``Load``, which say nothing of generations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, Field
from services_bot.core.models import ApiModel, EpochTime, Float, Int, Str, Token, _lenient_str

EventKind = Literal["normal", "warning", "abnormal"]
MAX_EVENT_TEXT = 500
"""Event text is free text from the API: kept to this many characters (it is quoted, never parsed, E3)."""


def _bounded_text(value: Any) -> str | None:
    text = _lenient_str(value)
    if text is not None and len(text) > MAX_EVENT_TEXT:
        return text[: MAX_EVENT_TEXT - 1] + "…"
    return text


Text = Annotated[str | None, BeforeValidator(_bounded_text)]


def _list_or_empty(value: Any) -> Any:
    return value if isinstance(value, list) else []


# -- v1 wire ----------------------------------------------------------------------------------------


class V1Event(ApiModel):
    occur_time: EpochTime = None
    event_type: Token = None
    event_info: Text = None


class V1EventList(ApiModel):
    service_id: Str = None
    service_name: Str = None
    total_count: Int = None
    count: Int = None
    events: Annotated[list[V1Event], BeforeValidator(_list_or_empty)] = Field(default_factory=list)


class V1Monitor(ApiModel):
    """One model (real-time) or node (edge). Usage figures are amounts in use, not percentages."""

    model_id: Str = None
    model_name: Str = None
    model_version: Str = None
    node_id: Str = None
    node_name: Str = None
    invocation_times: Int = None
    failed_times: Int = None
    cpu_core_usage: Float = None
    cpu_core_total: Float = None
    cpu_memory_usage: Float = None
    cpu_memory_total: Float = None
    gpu_usage: Float = None
    gpu_total: Float = None
    gpu_memory_usage: Float = None
    gpu_memory_total: Float = None
    npu_usage: Float = None
    npu_total: Float = None
    npu_memory_usage: Float = None
    npu_memory_total: Float = None
    model_running_instance_count: Int = None
    model_instance_count: Int = None


class V1MonitorAnswer(ApiModel):
    service_id: Str = None
    service_name: Str = None
    monitors: Annotated[list[V1Monitor], BeforeValidator(_list_or_empty)] = Field(default_factory=list)
    service_running_instance_count: Int = None
    service_instance_count: Int = None
    req_count_per_min: Int = None


class V1LogConfig(ApiModel):
    model_id: Str = None
    model_name: Str = None
    model_version: Str = None
    weight: Int = None
    specification: Str = None
    instance_count: Int = None
    cluster_id: Str = None


class V1UpdateLog(ApiModel):
    update_time: EpochTime = None
    result: Token = None
    config: Annotated[list[V1LogConfig], BeforeValidator(_list_or_empty)] = Field(default_factory=list)
    cluster_id: Str = None


class V1UpdateLogs(ApiModel):
    service_id: Str = None
    service_name: Str = None
    logs: Annotated[list[V1UpdateLog], BeforeValidator(_list_or_empty)] = Field(default_factory=list)


# -- v2 wire ----------------------------------------------------------------------------------------


class V2Event(ApiModel):
    id: Str = None
    service_id: Str = None
    service_version_id: Str = None
    event_count: Int = None
    event_type: Token = None
    event_info: Text = None
    event_info_cn: Text = None
    create_at: EpochTime = None
    update_at: EpochTime = None


class V2EventPage(ApiModel):
    current: Int = None
    pages: Int = None
    size: Int = None
    total: Int = None
    data: Annotated[list[V2Event], BeforeValidator(_list_or_empty)] = Field(default_factory=list)


class V2DeploymentItem(ApiModel):
    id: Str = None
    name: Str = None
    status: Token = None
    pool_id: Str = None
    version: Str = None
    weight: Int = None
    update_at: EpochTime = None


class V2DeploymentList(ApiModel):
    total: Int = None
    data: Annotated[list[V2DeploymentItem], BeforeValidator(_list_or_empty)] = Field(default_factory=list)


class V2Instance(ApiModel):
    instance_name: Str = None
    status: Token = None
    pod_count: Int = None
    running_pod_count: Int = None
    update_at: EpochTime = None


class V2InstancePage(ApiModel):
    total: Int = None
    data: Annotated[list[V2Instance], BeforeValidator(_list_or_empty)] = Field(default_factory=list)


# -- product shapes ---------------------------------------------------------------------------------


class Event(BaseModel):
    """One event of a service, either generation. ``at`` is the last occurrence, ``first_at`` the first (v2
    aggregates repeats into one row with ``count``; a v1 row is one occurrence)."""

    at: datetime | None
    kind: EventKind
    text: str
    count: int = 1
    first_at: datetime | None = None
    source: Literal["event", "update"] = "event"

    @property
    def abnormal(self) -> bool:
        return self.kind != "normal"


class UpdateLog(BaseModel):
    """One configuration update (v1 ``/logs``): when, and its result (``success``, ``fail``, ``running``)."""

    at: datetime | None
    result: str
    models: list[str] = Field(default_factory=list, description="model name version, per config entry")
    instances: int | None = None


class ModelLoad(BaseModel):
    """Usage of one model (v1 monitor) or deployment (v2): instances and, where offered, resources."""

    name: str
    running: int | None = None
    wanted: int | None = None
    status: str | None = None
    cpu_cores: tuple[float | None, float | None] | None = None
    memory_mb: tuple[float | None, float | None] | None = None
    gpus: tuple[float | None, float | None] | None = None
    npus: tuple[float | None, float | None] | None = None
    calls: int | None = None
    failed_calls: int | None = None

    def usage(self) -> list[tuple[str, tuple[float | None, float | None], str]]:
        """The resources this model reports, as (label, (used, total), unit), in the order answers show them."""
        offered = (("CPU", self.cpu_cores, " cores"), ("memory", self.memory_mb, " MB"), ("GPU", self.gpus, ""),
                   ("NPU", self.npus, ""))  # fmt: skip
        return [(label, pair, unit) for label, pair, unit in offered if pair is not None]


class Load(BaseModel):
    """How loaded a service is: running against wanted instances and what each model uses."""

    running: int | None = None
    wanted: int | None = None
    requests_per_minute: int | None = None
    models: list[ModelLoad] = Field(default_factory=list)

    @property
    def short(self) -> bool:
        """Fewer instances run than are wanted (M4): instances are down."""
        return self.running is not None and self.wanted is not None and self.running < self.wanted


def _kind(raw: str | None) -> EventKind:
    word = (raw or "").strip().lower()
    return "abnormal" if word == "abnormal" else "warning" if word == "warning" else "normal"


def v1_events(answer: V1EventList) -> list[Event]:
    return [Event(at=e.occur_time, kind=_kind(e.event_type), text=e.event_info or "") for e in answer.events]


def v2_events(page: V2EventPage) -> list[Event]:
    return [
        Event(
            at=e.update_at or e.create_at,
            first_at=e.create_at,
            kind=_kind(e.event_type),
            text=e.event_info or e.event_info_cn or "",
            count=max(1, e.event_count or 1),
        )
        for e in page.data
    ]


def update_logs(answer: V1UpdateLogs) -> list[UpdateLog]:
    return [
        UpdateLog(
            at=log.update_time,
            result=(log.result or "unknown").lower(),
            models=[" ".join(p for p in (c.model_name, c.model_version) if p) for c in log.config],
            instances=sum(c.instance_count or 0 for c in log.config) if log.config else None,
        )
        for log in answer.logs
    ]


def _pair(used: float | None, total: float | None) -> tuple[float | None, float | None] | None:
    return None if used is None and total is None else (used, total)


def v1_load(answer: V1MonitorAnswer) -> Load:
    models = [
        ModelLoad(
            name=" ".join(p for p in (m.model_name or m.node_name or m.model_id or m.node_id, m.model_version) if p)
            or "model",
            running=m.model_running_instance_count,
            wanted=m.model_instance_count,
            cpu_cores=_pair(m.cpu_core_usage, m.cpu_core_total),
            memory_mb=_pair(m.cpu_memory_usage, m.cpu_memory_total),
            gpus=_pair(m.gpu_usage, m.gpu_total) if m.gpu_total else None,
            npus=_pair(m.npu_usage, m.npu_total) if m.npu_total else None,
            calls=m.invocation_times,
            failed_calls=m.failed_times,
        )
        for m in answer.monitors
    ]
    running, wanted = answer.service_running_instance_count, answer.service_instance_count
    if running is None and models and all(m.running is not None for m in models):
        running = sum(m.running or 0 for m in models)
    if wanted is None and models and all(m.wanted is not None for m in models):
        wanted = sum(m.wanted or 0 for m in models)
    return Load(running=running, wanted=wanted, requests_per_minute=answer.req_count_per_min, models=models)


def v2_load(deployments: V2DeploymentList, instances: V2InstancePage) -> Load:
    """v2 has no monitor: the load answer is deployments and their instances' pods (running against all)."""
    by_deployment: dict[str, list[V2Instance]] = {}
    for instance in instances.data:
        name = instance.instance_name or ""
        owner = next((d.name for d in deployments.data if d.name and name.startswith(d.name)), "")
        by_deployment.setdefault(owner or "", []).append(instance)
    models = []
    for d in deployments.data:
        own = by_deployment.get(d.name or "", [])
        models.append(
            ModelLoad(
                name=" ".join(p for p in (d.name, d.version) if p) or "deployment",
                status=(d.status or "").lower() or None,
                running=sum(i.running_pod_count or 0 for i in own) if own else None,
                wanted=sum(i.pod_count or 0 for i in own) if own else None,
            )
        )
    counted = [i for i in instances.data if i.pod_count is not None]
    running = sum(i.running_pod_count or 0 for i in counted) if counted else None
    wanted = sum(i.pod_count or 0 for i in counted) if counted else None
    return Load(running=running, wanted=wanted, models=models)
