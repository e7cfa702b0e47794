"""The v2 (InferService) wire models and their mapping onto the one ``Service`` every surface uses.

v2 (``/v2/{project_id}/services``, spec ``v2-list-services.md`` and ``v2-show-service.md``) names things
differently from v1: ``id``/``name`` for ``service_id``/``service_name``, upper-case statuses, ``type``
``REAL_TIME``/``ASYNC_REAL_TIME``, ``create_at``/``update_at`` (numbers in the list, numeric strings in the
details), ``failure_reason`` for ``error_msg`` and deployments (``version.instance_groups``) where v1 has
``config``. The list row's ``version`` is a string and the details' an object (L2), so each has its model.
Statuses and types map through the two tables below, the only place that does; anything they do not know is
kept verbatim, so a new upstream value shows up as itself instead of crashing or hiding as "unknown".
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict
from services_bot.core.models import (
    ApiModel,
    Bool,
    Deployment,
    EpochTime,
    Int,
    ListedService,
    Schedule,
    Service,
    Str,
    Token,
    _json_list,
    _lenient_int,
    epoch_to_datetime,
)

V2_STATUSES: dict[str, str] = {
    "RUNNING": "running",
    "DEPLOYING": "deploying",
    "CONCERNING": "concerning",
    "FAILED": "failed",
    "STOPPED": "stopped",
    "STOPPING": "stopping",
    "DELETING": "deleting",
    "ERROR": "error",
    "UPGRADING": "upgrading",
    "INTERRUPTING": "interrupting",
    "INIT": "init",
}
"""v2 status → the product's status. The seven shared values are the v1 words; the four v2-only ones keep their
own name (lower-cased like every product status), never folded into a v1 word: ``INIT`` is not proven to be v1's
``pending`` (v1-v2-mapping.md §5). README "Status mapping" holds the same table and says where each counts."""

V2_TYPES: dict[str, str] = {"REAL_TIME": "real-time", "ASYNC_REAL_TIME": "async-real-time"}
"""v2 ``type`` → the product's service type."""

STATUS_TO_V2: dict[str, str] = {product: wire for wire, product in V2_STATUSES.items()}
TYPE_TO_V2: dict[str, str] = {product: wire for wire, product in V2_TYPES.items()}


def product_status(wire: str | None) -> str | None:
    """A v2 status in the product's vocabulary; an unknown one verbatim (case-insensitive for the known)."""
    if wire is None:
        return None
    return V2_STATUSES.get(wire.strip().upper(), wire)


def product_type(wire: str | None) -> str | None:
    if wire is None:
        return None
    return V2_TYPES.get(wire.strip().upper(), wire)


class V2Tag(ApiModel):
    key: Str = None
    value: Str = None


class V2Schedule(ApiModel):
    """Scheduled stop; ``type`` is upper-case ``STOP`` in v2, ``processed`` says it already ran."""

    due_time: Int = None
    duration: Int = None
    time_unit: Str = None
    type: Str = None
    processed: Bool = None


_Tags = Annotated[list[V2Tag] | None, BeforeValidator(_json_list)]
_Schedules = Annotated[list[V2Schedule] | None, BeforeValidator(_json_list)]


class V2ServiceRow(ApiModel):
    """One element of ``data`` in ``GET /v2/{project_id}/services`` (``ServiceItemResponseData``)."""

    id: str
    name: Str = None
    status: Token = None
    version: Str = None
    version_count: Int = None
    description: Str = None
    type: Token = None
    deploy_type: Token = None
    user_name: Token = None
    workspace_id: Token = None
    create_at: EpochTime = None
    update_at: EpochTime = None
    auth_type: Token = None
    task_type: Token = None
    tags: _Tags = None
    schedule: _Schedules = None
    frozen_infos: Annotated[list[dict[str, Any]] | None, BeforeValidator(_json_list)] = None


class V2Page(BaseModel):
    """The v2 list envelope. ``data`` and ``total`` are required: a 200 without them is not an empty fleet.
    ``size`` is ambiguous (page length or page size, L1) and is not relied on. Unknown fields are kept: an
    ``error_code`` beside ``data`` is an error inside a 200."""

    model_config = ConfigDict(extra="allow")

    data: list[V2ServiceRow]
    total: Annotated[int, BeforeValidator(_lenient_int)]
    current: Int = None
    size: Int = None
    pages: Int = None


class V2InstanceGroup(ApiModel):
    """A deployment of the current version (``version.instance_groups[]``)."""

    id: Str = None
    name: Str = None
    pool_id: Str = None
    count: Int = None
    running_count: Int = None
    status: Str = None
    weight: Int = None
    unit_configs: Annotated[list[dict[str, Any]] | None, BeforeValidator(_json_list)] = None


class V2Version(ApiModel):
    id: Str = None
    version: Str = None
    description: Str = None
    predict_url: Str = None
    instance_groups: Annotated[list[V2InstanceGroup] | None, BeforeValidator(_json_list)] = None


class V2PredictUrl(ApiModel):
    type: Str = None
    urls: Annotated[list[str] | None, BeforeValidator(_json_list)] = None


class V2ServiceDetail(ApiModel):
    """``GET /v2/{project_id}/services/{id}`` (``ShowInferServiceResponse``); start and stop answer the same."""

    id: str
    name: Str = None
    workspace_id: Token = None
    type: Token = None
    deploy_type: Token = None
    status: Token = None
    failure_reason: Str = None
    version: V2Version | None = None
    predict_url: Annotated[list[V2PredictUrl] | None, BeforeValidator(_json_list)] = None
    tags: _Tags = None
    schedule: _Schedules = None
    create_at: EpochTime = None
    update_at: EpochTime = None
    task_type: Token = None
    user_name: Token = None


_URL_PREFERENCE = ("PUBLIC", "INTERNAL", "CONSOLE")


def _address(detail: V2ServiceDetail) -> str | None:
    """The predict URL a person would call: public before internal before console, else the version's."""
    by_type = {(p.type or "").upper(): p.urls for p in detail.predict_url or [] if p.urls}
    for kind in _URL_PREFERENCE:
        if by_type.get(kind):
            return by_type[kind][0]
    for urls in by_type.values():
        return urls[0]
    return detail.version.predict_url if detail.version else None


def _deployment(group: V2InstanceGroup) -> Deployment:
    flavors = [str(u["flavor"]) for u in group.unit_configs or [] if isinstance(u, dict) and u.get("flavor")]
    return Deployment(
        name=group.name or group.id,
        status=product_status(group.status),
        count=group.count,
        running_count=group.running_count,
        flavor=", ".join(dict.fromkeys(flavors)) or None,
        pool=group.pool_id,
        weight=group.weight,
    )


def _due_time(schedules: list[V2Schedule] | None) -> Any:
    pending = [s.due_time for s in schedules or [] if s.due_time and not s.processed]
    return epoch_to_datetime(min(pending)) if pending else None


def _common(row: V2ServiceRow | V2ServiceDetail) -> dict[str, Any]:
    """The fields rows and details share, in ``Service`` names (``update_at`` is the change time: v2 has no
    separate status-change time, v1-v2-mapping.md §3)."""
    return {
        "service_id": row.id,
        "service_name": row.name,
        "status": product_status(row.status),
        "infer_type": product_type(row.type),
        "workspace_id": row.workspace_id,
        "owner": row.user_name,
        "publish_at": row.create_at,
        "transition_at": row.update_at,
        "update_time": row.update_at,
        "due_time": _due_time(row.schedule),
        "schedule": [Schedule(duration=s.duration, time_unit=s.time_unit, type=s.type) for s in row.schedule or []]
        or None,
        "tags": {t.key: t.value or "" for t in row.tags or [] if t.key} or None,
        "deploy_type": row.deploy_type,
        "task_type": row.task_type,
    }


def row_to_service(row: V2ServiceRow, context: dict[str, str], *, every_field: bool = True) -> ListedService:
    """A list row as a ``Service`` (``detail`` "list": no failure reason or address, they are details only), or
    with ``every_field`` false as the ``ListedService`` answers read (v2's own fields are dropped)."""
    known = {
        **_common(row),
        "description": row.description,
        "version": row.version,
        "version_count": row.version_count,
        "auth_type": row.auth_type,
        "frozen_infos": row.frozen_infos,
    }
    extra = {k: v for k, v in (row.__pydantic_extra__ or {}).items() if k not in known}
    fields = {**extra, **{k: v for k, v in known.items() if v is not None}}
    model = Service if every_field else ListedService
    return model.model_validate(fields, context={**context, "generation": "v2"})


def detail_to_service(detail: V2ServiceDetail, context: dict[str, str]) -> Service:
    """Details as a ``Service``: ``failure_reason`` is the error message, deployments take v1's ``config`` place,
    the predict URL is the address."""
    version = detail.version
    known = {
        **_common(detail),
        "description": version.description if version else None,
        "version": version.version if version else None,
        "error_msg": detail.failure_reason,
        "access_address": _address(detail),
        "deployments": [_deployment(g) for g in (version.instance_groups if version else None) or []] or None,
        "generation": "v2",
    }
    return Service.model_validate(known, context={**context, "generation": "v2"})
