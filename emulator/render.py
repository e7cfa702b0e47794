"""Turn services into the documented JSON shapes: ListServices rows, service details, legacy rows.

Field names and order follow the spec tables (list-services.md Table 5, show-service.md Tables 3, 4 and 6,
legacy-infer-services.md Table 3). Conditional fields are emitted only when their documented condition
holds. The quirk switches (quirks.py) bend the output on purpose; with all of them off the output is
exactly the documented shape.

List rows are encoded once and cached on the service (``Service.row``), because a 1000-row page out of
100 000 services has to be served in a few milliseconds: the page body is a join of cached bytes.
"""

from __future__ import annotations

import json
from typing import Any

from services_bot.emulator.details import config_status, extras, node_state
from services_bot.emulator.fleet import DEFAULT_WORKSPACE, Service
from services_bot.emulator.quirks import Quirks

UNKNOWN_FIELD = {"x": 1}
_PLAIN = Quirks()


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes (the separators are irrelevant to a JSON parser, Q42)."""
    return json.dumps(obj, separators=(",", ":")).encode()


class _Fmt:
    """Number and id formatting under the current quirks."""

    __slots__ = ("as_float", "as_str", "seconds", "ws_number")

    def __init__(self, q: Quirks, on_services: bool = True) -> None:
        self.as_str = q.numbers_as_strings and on_services
        self.as_float = q.float_numbers
        self.seconds = q.publish_at_seconds
        self.ws_number = q.workspace_id_as_number

    def counter(self, v: int) -> int | float | str:
        """invocation_times, failed_times, shared_count, progress (Q03)."""
        if self.as_str:
            return str(v)
        return float(v) if self.as_float else v

    def num(self, v: int) -> int | float:
        return float(v) if self.as_float else v

    def publish(self, v: int) -> int | float:
        return self.num(v // 1000 if self.seconds else v)

    def workspace(self, v: str) -> str | int:
        return 0 if self.ws_number and v == DEFAULT_WORKSPACE else v


def _schedule(s: Service) -> list[dict[str, Any]]:
    assert s.schedule is not None
    duration, unit = s.schedule
    return [{"duration": duration, "time_unit": unit, "type": "stop"}]


def list_row(s: Service, q: Quirks) -> dict[str, Any]:
    """A ListServices object (Table 5 fields only: no error_msg, no config)."""
    f = _Fmt(q)
    full = not q.sparse
    batch = s.infer_type == "batch"
    d: dict[str, Any] = {"failed_times": f.counter(s.failed_times), "owner": s.owner}
    if full and s.due_time is not None:
        d["due_time"] = f.num(s.due_time)
    if full and batch and s.finished_time is not None:
        d["finished_time"] = f.num(s.finished_time)
    d["infer_type"] = s.infer_type
    d["service_name"] = s.service_name
    d["description"] = s.description
    d["project"] = s.project
    d["invocation_times"] = f.counter(s.invocation_times)
    d["publish_at"] = f.publish(s.publish_at)
    d["workspace_id"] = f.workspace(s.workspace_id)
    if full and s.schedule is not None:
        d["schedule"] = _schedule(s)
    if full and batch and s.start_time is not None:
        d["start_time"] = f.num(s.start_time)
    if full:
        d["operation_time"] = f.num(s.operation_time)
    d["is_shared"] = s.is_shared
    d["service_id"] = s.service_id
    if full and s.status == "deploying":
        d["progress"] = f.counter(s.progress)
    d["shared_count"] = f.counter(s.shared_count)
    d["tenant"] = s.tenant
    d["status"] = s.status
    if full:
        sc = s.sample_collection
        d["is_opened_sample_collection"] = sc if q.sample_collection_bool else ("true" if sc else "false")
        d["transition_at"] = f.num(s.transition_at)
        d["is_free"] = s.is_free
        if s.additional_properties:
            d["additional_properties"] = dict(s.additional_properties)
    if q.unknown_fields:
        d["new_field"] = dict(UNKNOWN_FIELD)
    return d


def encoded_row(s: Service, q: Quirks) -> bytes:
    """The cached encoding of ``list_row`` (the cache is cleared by Fleet.changed / clear_encoded)."""
    row = s.row
    if row is None:
        row = s.row = dumps(list_row(s, q))
    return row


def legacy_row(s: Service, q: Quirks) -> dict[str, Any]:
    """A legacy ``services`` entry: counters as strings, ``publish_time``/``update_time`` (Table 3)."""
    d: dict[str, Any] = {"service_id": s.service_id, "service_name": s.service_name}
    if s.description:  # the only optional field in the legacy table
        d["description"] = s.description
    d["infer_type"] = s.infer_type
    d["status"] = s.status
    d["is_shared"] = s.is_shared
    d["invocation_times"] = str(s.invocation_times)
    d["failed_times"] = str(s.failed_times)
    d["publish_time"] = s.publish_at
    d["update_time"] = s.update_time
    if q.unknown_fields:
        d["new_field"] = dict(UNKNOWN_FIELD)
    return d


def encoded_legacy_row(s: Service, q: Quirks) -> bytes:
    row = s.legacy_row
    if row is None:
        row = s.legacy_row = dumps(legacy_row(s, q))
    return row


def _config(s: Service, x: dict[str, Any], q: Quirks, f: _Fmt) -> list[dict[str, Any]]:
    """QueryServiceConfig entries (Table 4), reduced for a shared service (Q21)."""
    out: list[dict[str, Any]] = []
    for i, (model_id, model_name, model_version, weight) in enumerate(s.models):
        if s.is_shared:
            out.append({"model_id": model_id, "model_name": model_name, "model_version": model_version})
            continue
        static = x["configs"][i] if i < len(x["configs"]) else x["configs"][0]
        c: dict[str, Any] = {"model_version": model_version}
        if not q.sparse and s.finished_time is not None and s.infer_type == "batch":
            c["finished_time"] = f.num(s.finished_time)
        if "custom_spec" in static:
            c["custom_spec"] = dict(static["custom_spec"])
        elif q.sparse:
            c["custom_spec"] = {}
        c["envs"] = dict(static["envs"])
        c["specification"] = static["specification"]
        c["weight"] = f.num(weight)
        if not q.sparse and "source_type" in static:
            c["source_type"] = static["source_type"]
        c["model_id"] = model_id
        if not q.sparse:
            for key in ("src_path", "req_uri", "mapping_type"):
                if key in static:
                    c[key] = static[key]
            if s.infer_type == "batch" and s.start_time is not None:
                c["start_time"] = f.num(s.start_time)
            if "cluster_id" in x:
                c["cluster_id"] = x["cluster_id"]
            if x["nodes"]:
                c["nodes"] = _nodes(s, x, f)
            if "mapping_rule" in static:
                c["mapping_rule"] = static["mapping_rule"]
        c["model_name"] = model_name
        if not q.sparse:
            for key in ("src_type", "dest_path"):
                if key in static:
                    c[key] = static[key]
        c["instance_count"] = f.num(static["instance_count"])
        c["status"] = config_status(s.status, i)
        c["scaling"] = static["scaling"]
        c["support_debug"] = static["support_debug"]
        c["additional_properties"] = {}
        if not q.sparse and "pool_name" in x:
            c["pool_name"] = x["pool_name"]
        if q.unknown_fields:
            c["new_field"] = dict(UNKNOWN_FIELD)
        out.append(c)
    return out


def _nodes(s: Service, x: dict[str, Any], f: _Fmt) -> list[dict[str, Any]]:
    """Edge nodes (Table 6) with the status-dependent fields filled in for the current status."""
    out = []
    for i, static in enumerate(x["nodes"]):
        instance_status, state, message = node_state(s.status, i)
        n = dict(static)
        n["host_ips"] = list(static["host_ips"])
        n["memory"] = f.num(n["memory"])
        n["cpu"] = f.num(n["cpu"])
        n["gpu_num"] = f.num(n["gpu_num"])
        n["deployment_num"] = f.num(n["deployment_num"])
        n["instance_status"] = instance_status
        n["state"] = state
        if message is not None:
            n["message"] = message
        out.append(n)
    return out


def details(s: Service, q: Quirks | None = None) -> dict[str, Any]:
    """The details object (Table 3). With ``q`` None: the documented shape, no quirks."""
    q = q or _PLAIN
    f = _Fmt(q)
    x = extras(s)
    full = not q.sparse
    d: dict[str, Any] = {"service_id": s.service_id, "service_name": s.service_name}
    if full:
        d["description"] = s.description
    d["tenant"] = s.tenant
    d["project"] = s.project
    d["owner"] = s.owner
    d["publish_at"] = f.publish(s.publish_at)
    d["infer_type"] = s.infer_type
    d["workspace_id"] = f.workspace(s.workspace_id)
    if "cluster_id" in x:
        d["cluster_id"] = x["cluster_id"]
    if full and "vpc_id" in x:
        d["vpc_id"] = x["vpc_id"]
        d["subnet_network_id"] = x["subnet_network_id"]
        d["security_group_id"] = x["security_group_id"]
    d["status"] = s.status
    d["progress"] = f.counter(s.progress)
    if s.error_msg is not None:
        d["error_msg"] = s.error_msg
    config = _config(s, x, q, f)
    d["config"] = json.dumps(config) if q.config_as_string else config
    if "access_address" in x:
        d["access_address"] = x["access_address"]
    if full and "bind_access_address" in x:
        d["bind_access_address"] = x["bind_access_address"]
    d["invocation_times"] = f.counter(s.invocation_times)
    d["failed_times"] = f.counter(s.failed_times)
    d["is_shared"] = s.is_shared
    d["shared_count"] = f.counter(s.shared_count)
    if full and s.schedule is not None:
        d["schedule"] = _schedule(s)
    d["update_time"] = f.num(s.update_time)
    if full and x["debug_url"] is not None and s.status in ("running", "concerning"):
        d["debug_url"] = x["debug_url"]
    if full and s.due_time is not None:
        d["due_time"] = f.num(s.due_time)
    d["operation_time"] = f.num(s.operation_time)
    d["transition_at"] = f.num(s.transition_at)
    d["is_free"] = s.is_free
    d["additional_properties"] = dict(s.additional_properties or {})
    if full:
        d["pool_name"] = x.get("pool_name", "")
    if q.unknown_fields:
        d["new_field"] = dict(UNKNOWN_FIELD)
    return d
