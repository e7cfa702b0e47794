"""Typed models of the ModelArts services API, liberal in what they accept.

The three endpoints disagree with each other and with their own tables (see ``spec/quirks.md``). These
models absorb that once, here, so nothing above them needs to know: numbers may come as strings or floats,
``workspace_id`` as a number, ``config`` as a JSON-encoded string, epoch times in ms or seconds, empty
values in four spellings. Unknown fields are kept by ``Service`` (``extra="allow"``; a listing's
``ListedService`` rows keep only what answers read) and unknown status values are kept verbatim: a new status
upstream must show up, not crash the bot.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal, Union

from annotated_types import Gt, MaxLen, MinLen
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationInfo,
    model_validator,
)

V1_STATUSES: tuple[str, ...] = (
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
"""Every value the ``status`` filter of ``GET /v1/.../services`` accepts (quirk Q08); responses may add others."""

V2_ONLY_STATUSES: tuple[str, ...] = ("error", "upgrading", "interrupting", "init")
"""Statuses only the v2 API reports (``core.models_v2.V2_STATUSES`` maps them), shown as themselves."""

KNOWN_STATUSES: tuple[str, ...] = (*V1_STATUSES, *V2_ONLY_STATUSES)
"""The product's status vocabulary: every status a filter, subscription or answer knows by name."""

UNHEALTHY_STATUSES: frozenset[str] = frozenset({"failed", "concerning", "error"})
"""What ``unhealthy``, the default alerts and summaries count: v2's ERROR ("abnormal") is an outage like failed."""

FAILED_STATUSES: frozenset[str] = frozenset({"failed", "error"})
"""What the ``failed`` filter matches, and which statuses carry their failure cause in details."""

V1_INFER_TYPES: tuple[str, ...] = ("real-time", "batch", "edge")
KNOWN_INFER_TYPES: tuple[str, ...] = (*V1_INFER_TYPES, "async-real-time")

SECONDS_GUARD = 10**11
"""Epoch values below this are taken as seconds (quirk Q02): as ms they would be before March 1973."""


def _empty_to_none(value: Any) -> Any:
    """Absent, null, "", [] and {} all mean "not set" (quirk Q20)."""
    if value is None or value == "" or value == [] or value == {}:
        return None
    return value


def _lenient_int(value: Any) -> int | None:
    """An int from an int, an integral float or a numeric string; None for anything else (Q03, Q04)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) else None
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if math.isfinite(number) else None
    return None


def _lenient_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _lenient_bool(value: Any) -> bool | None:
    """JSON booleans, "true"/"false" in any case, 0/1 (Q05, Q36)."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no", ""):
            return False if lowered else None
        return None
    if isinstance(value, int | float):
        return bool(value)
    return None


def _lenient_str(value: Any) -> str | None:
    """Strings stay, numbers become their decimal text (``workspace_id: 0`` → ``"0"``, Q01)."""
    value = _empty_to_none(value)
    if value is None:
        return None
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) else json.dumps(value)


def _interned_str(value: Any) -> str | None:
    """Like ``_lenient_str``, interned: statuses, types, workspaces, owners repeat across a fleet of 100 000."""
    text = _lenient_str(value)
    return sys.intern(text) if text is not None and len(text) <= 64 else text


class SecondsSizedTime(datetime):
    """A time whose epoch value was seconds-sized (Q02) and read as seconds: ``Service`` notes it, so nobody is
    shown a silent guess. It is a ``datetime`` in every other respect."""

    seen: ClassVar[bool] = False
    """Set once one was made: until then ``Service`` need not look at its times for one."""


def epoch_to_datetime(value: Any) -> datetime | None:
    """Epoch ms (documented) or seconds (as in the list example, Q02) → aware UTC datetime; one read as seconds is a
    ``SecondsSizedTime``."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, str) and not value.strip().lstrip("-").replace(".", "", 1).isdigit():
        return iso_to_datetime(value)
    number = _lenient_float(value)
    if number is None or number <= 0:
        return None
    kind = SecondsSizedTime if number < SECONDS_GUARD else datetime
    SecondsSizedTime.seen = SecondsSizedTime.seen or kind is SecondsSizedTime
    try:
        return kind.fromtimestamp(number if number < SECONDS_GUARD else number / 1000.0, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def iso_to_datetime(value: Any) -> datetime | None:
    """``YYYY-MM-DDThh:mm:ss`` in UTC with no zone (Nodes, Q07); a trailing Z, offset or fraction is fine."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace(" ", "T", 1)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json_list(value: Any) -> Any:
    """``config`` sometimes arrives as a JSON-encoded string; decode it, then treat empties as unset."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    value = _empty_to_none(value)
    return [value] if isinstance(value, dict) else value


def _json_object(value: Any) -> Any:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return _empty_to_none(value) if isinstance(value, dict) else None


def _str_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()] or None
    return _empty_to_none(value)


def _documented_or(documented: Any, lenient: Callable[[Any], Any]) -> Any:
    """A field read by pydantic-core alone when the value is what the spec documents (or null), and by ``lenient``
    only when it is not (a quirk). Most values are as documented: reading them without a Python call per field is
    what makes a page of 1 000 services cheap (a listing of 100 000 was mostly these calls, docs/benchmarks.md)."""
    fallback = Annotated[Any, PlainValidator(lenient)]
    return Annotated[Union[documented, None, fallback], Field(union_mode="left_to_right")]  # noqa: UP007, RUF036


MS_FLOOR = datetime.fromtimestamp(SECONDS_GUARD / 1000, UTC)
"""The earliest time an epoch in ms can give: anything read before it was seconds-sized, or not a time."""

Int = _documented_or(Annotated[int, Strict()], _lenient_int)
Float = _documented_or(Annotated[float, Strict()], _lenient_float)
Bool = _documented_or(bool, _lenient_bool)
"""JSON booleans, and the "true"/"false" strings the spec documents for some flags (Q05), read by pydantic-core."""
Str = _documented_or(Annotated[str, Strict(), MinLen(1)], _lenient_str)
Token = _documented_or(Annotated[str, Strict(), MinLen(1), MaxLen(64), AfterValidator(sys.intern)], _interned_str)
EpochTime = _documented_or(Annotated[AwareDatetime, Gt(MS_FLOOR)], epoch_to_datetime)
"""Epoch ms as pydantic-core reads them (``val_temporal_unit`` is ms in ``ApiModel``); seconds-sized values, ISO
text without a zone and other quirks go through ``epoch_to_datetime``."""
IsoTime = Annotated[datetime | None, BeforeValidator(iso_to_datetime)]
JsonObject = Annotated[dict[str, Any] | None, BeforeValidator(_json_object)]
StrList = Annotated[list[str] | None, BeforeValidator(_str_list)]

_EPOCH_FIELDS = (
    "publish_at",
    "update_time",
    "transition_at",
    "operation_time",
    "due_time",
    "start_time",
    "finished_time",
)


class ApiModel(BaseModel):
    """Base of every API model: unknown fields kept, population by field name."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=False, val_temporal_unit="milliseconds")


class Schedule(ApiModel):
    """Auto-stop schedule (LIST Table 6, DETAILS Table 7); other units and types are kept (Q14)."""

    duration: Int = None
    time_unit: Str = None
    type: Str = None


class CustomSpec(ApiModel):
    """Custom resource flavor (DETAILS Table 5); ``cpu``/``gpu_p4`` are fractional (Q37)."""

    gpu_p4: Float = None
    memory: Int = None
    cpu: Float = None
    ascend_a310: Int = None


class Node(ApiModel):
    """An edge node of a model deployment (DETAILS Table 6). Its enums are not service statuses (Q10)."""

    id: Str = None
    name: Str = None
    host_name: Str = None
    instance_status: Str = None
    state: Str = None
    message: Str = None
    memory: Int = None
    cpu: Int = None
    enable_gpu: Bool = None
    gpu_num: Int = None
    host_ips: StrList = None
    os_version: Str = None
    os_type: Str = None
    os_name: Str = None
    arch: Str = None
    node_label: Str = None
    description: Str = None
    predict_url: Str = None
    deployment_num: Int = None
    created_at: IsoTime = None
    updated_at: IsoTime = None


class ServiceConfig(ApiModel):
    """One model deployed in a service (DETAILS Table 4). Shared services return only the model fields (Q21)."""

    model_id: Str = None
    model_name: Str = None
    model_version: Str = None
    specification: Str = None
    custom_spec: Annotated[CustomSpec | None, BeforeValidator(_json_object)] = None
    weight: Int = None
    instance_count: Int = None
    status: Str = None
    scaling: Bool = None
    support_debug: Bool = None
    envs: JsonObject = None
    additional_properties: JsonObject = None
    cluster_id: Str = None
    pool_name: Str = None
    nodes: Annotated[list[Node] | None, BeforeValidator(_json_list)] = None
    source_type: Str = None
    src_type: Str = None
    src_path: Str = None
    dest_path: Str = None
    req_uri: Str = None
    mapping_type: Str = None
    mapping_rule: Any = None
    start_time: EpochTime = None
    finished_time: EpochTime = None


class Deployment(ApiModel):
    """One v2 deployment (``version.instance_groups[]``): what v1 shows as ``config``, in v2's terms."""

    name: Str = None
    status: Str = None
    count: Int = None
    running_count: Int = None
    flavor: Str = None
    pool: Str = None
    weight: Int = None


class ListedService(ApiModel):
    """A service as a listing keeps it: the fields answers, filters, sorts, the watcher and its cards read, and
    nothing else (``extra="ignore"``). A page of 1 000 list rows reads in about 0.6 of the time of full rows and
    a row's ``__dict__`` holds 20 keys, not 41: 464 B instead of 832 B (docs/benchmarks.md, issue 17).

    ``Service`` is a ``ListedService`` with every other field of the three endpoints: what details, the legacy
    list, v2 rows and a listing that asks for ``ListParams.every_field`` (``ask --json``) give. ``detail`` says
    which endpoint filled it, ``target`` which configured target (set from the client's validation context),
    ``generation`` which API generation (``v1`` or ``v2``, ``core.models_v2``). ``notes`` records values that were
    repaired on the way in (a seconds-sized epoch, Q02) so a surface can say so.
    """

    model_config = ConfigDict(extra="ignore")

    service_id: str
    service_name: Str = None
    description: Str = None
    status: Token = None
    infer_type: Token = None
    workspace_id: Token = None
    progress: Int = None
    error_msg: Str = None
    owner: Token = None
    publish_at: EpochTime = None
    transition_at: EpochTime = None
    due_time: EpochTime = None
    invocation_times: Int = None
    failed_times: Int = None
    is_shared: Bool = None
    shared_count: Int = None
    detail: str = "list"
    target: str | None = None
    generation: Literal["v1", "v2"] = "v1"
    notes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _settle(self, info: ValidationInfo) -> ListedService:
        """Target, endpoint kind and generation from the validation context (the client passes them, and only
        them: set while parsing, they cost no per-instance bookkeeping, which matters at 100 000 services), and a
        note for each time read as seconds. One short Python call per service, after pydantic-core read its fields:
        the times are looked at only once the process has met a seconds-sized one."""
        fields = self.__dict__
        if info.context:
            fields.update(info.context)
        if SecondsSizedTime.seen:
            odd = [name for name in _EPOCH_FIELDS if type(fields.get(name)) is SecondsSizedTime]
            if odd:
                fields["notes"] = (*self.notes, *(f"{name} was seconds-sized; read as seconds" for name in odd))
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        """A listed row shares its fields-set with the rows of the same shape (``share_fields_sets``); the first
        assignment gives it its own."""
        if type(self.__pydantic_fields_set__) is SharedFieldsSet:
            object.__setattr__(self, "__pydantic_fields_set__", set(self.__pydantic_fields_set__))
        super().__setattr__(name, value)

    @property
    def is_unhealthy(self) -> bool:
        return self.status in UNHEALTHY_STATUSES

    @property
    def shown_progress(self) -> int | None:
        """Progress worth showing: while deploying, or when below 100 (it lingers at 100 after, Q16)."""
        if self.progress is None or (self.status != "deploying" and self.progress >= 100):
            return None
        return self.progress

    @property
    def display_name(self) -> str:
        return self.service_name or self.service_id


class Service(ListedService):
    """A service as any of the three endpoints describes it, normalised to one shape, every field kept.

    ``detail`` says which endpoint filled it: ``list`` rows lack ``config`` and ``error_msg`` (Q17),
    ``details`` lacks ``is_opened_sample_collection`` (Q39), ``legacy`` lacks most fields (Q35). Unknown fields
    are kept (``extra="allow"``) and shown in JSON output.
    """

    model_config = ConfigDict(extra="allow")

    tenant: Token = None
    project: Token = None
    update_time: EpochTime = None
    operation_time: EpochTime = None
    start_time: EpochTime = None
    finished_time: EpochTime = None
    legacy_update_time: EpochTime = None
    is_free: Bool = None
    is_opened_sample_collection: Bool = None
    schedule: Annotated[list[Schedule] | None, BeforeValidator(_json_list)] = None
    additional_properties: JsonObject = None
    config: Annotated[list[ServiceConfig] | None, BeforeValidator(_json_list)] = None
    access_address: Str = None
    bind_access_address: Str = None
    debug_url: Str = None
    cluster_id: Token = None
    pool_name: Token = None
    vpc_id: Str = None
    subnet_network_id: Str = None
    security_group_id: Str = None
    deployments: list[Deployment] | None = None

    def extra_fields(self) -> dict[str, Any]:
        """Fields the API sent that no documented table has (kept, shown in JSON output)."""
        return dict(self.__pydantic_extra__ or {})


class SharedFieldsSet(set[str]):
    """The fields-set of several rows of one shape; never changed in place (``ListedService.__setattr__`` copies
    it)."""


def share_fields_sets(services: Iterable[ListedService]) -> None:
    """Give rows of the same shape one set of the fields they were given. pydantic keeps that set per instance,
    and at about 1.5 KB it was the largest part of a listed service (docs/benchmarks.md, issue 17); a row that is
    assigned to later gets its own copy (``ListedService.__setattr__``)."""
    shapes: dict[frozenset[str], SharedFieldsSet] = {}
    for service in services:
        shape = frozenset(service.__pydantic_fields_set__)
        shared = shapes.get(shape)
        if shared is None:
            shared = shapes[shape] = SharedFieldsSet(shape)
        object.__setattr__(service, "__pydantic_fields_set__", shared)


class ListedPage(ApiModel):
    """One page of ``GET /v1/{project_id}/services``; ``count`` may be missing (Q26), ``services`` may not.

    ``services`` is required and must be a list: a 200 whose body is ``{}``, ``services: null`` or another
    API's envelope is not an empty fleet, and reading it as one would report every service deleted. The
    envelope keeps unknown fields (an ``error_code`` inside a 200 is an error, not a page).
    """

    total_count: Int = None
    count: Int = None
    services: list[ListedService]


class ServicePage(ListedPage):
    """A list page whose rows keep every field (``ListParams.every_field``)."""

    services: list[Service]  # type: ignore[assignment]


class LegacyService(ApiModel):
    """A row of the legacy ``infer-services`` list; ``to_service`` maps its names onto ``Service`` (Q35)."""

    service_id: str
    service_name: Str = None
    description: Str = None
    infer_type: Str = None
    status: Str = None
    is_shared: Bool = None
    invocation_times: Int = None
    failed_times: Int = None
    publish_time: EpochTime = None
    update_time: EpochTime = None

    def to_service(self, target: str | None = None) -> Service:
        known = {
            "service_id": self.service_id,
            "service_name": self.service_name,
            "description": self.description,
            "infer_type": self.infer_type,
            "status": self.status,
            "is_shared": self.is_shared,
            "invocation_times": self.invocation_times,
            "failed_times": self.failed_times,
            "publish_at": self.publish_time,
            "legacy_update_time": self.update_time,
            "detail": "legacy",
            "target": target,
        }
        return Service.model_validate({**(self.__pydantic_extra__ or {}), **known})


class LegacyServiceList(ApiModel):
    """The legacy envelope: ``is_success`` + ``services``, or ``error_code``/``error_msg`` on failure (Q34)."""

    is_success: Bool = None
    services: Annotated[list[LegacyService] | None, BeforeValidator(_json_list)] = None
    error_code: Str = None
    error_msg: Str = None
