"""The v2 JSON shapes: list rows (``ServiceItem``), the list envelope, and service details.

Field names and order follow ``v2-list-services.md`` (ServiceItem) and ``v2-show-service.md`` (top level,
``version``, ``instance_groups``), and the constructed fixtures ``v2-list-services.json`` and
``v2-show-service-*.json``. Times are 13-digit epoch milliseconds as numbers; the ``numbers_as_strings``
quirk makes them (and the counts) numeric strings, as the SDK types the details' times.

List rows are encoded once and cached on the service (``Service.v2_row``), exactly as the v1 rows are, so a
500-row page out of 100 000 services is a join of cached bytes.
"""

from __future__ import annotations

from typing import Any

from services_bot.emulator import v2_fields
from services_bot.emulator.details import extras
from services_bot.emulator.fleet import Service
from services_bot.emulator.quirks import Quirks
from services_bot.emulator.render import UNKNOWN_FIELD, dumps

_PLAIN = Quirks()
#: deployment (instance group) status and running share for each service status
_GROUP = {
    "RUNNING": ("RUNNING", 1.0),
    "CONCERNING": ("CONCERNING", 0.5),
    "UPGRADING": ("UPGRADING", 1.0),
    "DEPLOYING": ("DEPLOYING", 0.0),
    "INIT": ("DEPLOYING", 0.0),
    "FAILED": ("FAILED", 0.0),
    "ERROR": ("ERROR", 0.0),
    "STOPPED": ("STOPPED", 0.0),
    "STOPPING": ("STOPPING", 0.0),
    "INTERRUPTING": ("INTERRUPTING", 0.0),
    "DELETING": ("DELETING", 0.0),
}
_SERVING = frozenset({"RUNNING", "CONCERNING", "UPGRADING"})


class _Num:
    """Numbers under the quirks: ``numbers_as_strings`` makes times and counts numeric strings."""

    __slots__ = ("as_float", "as_str")

    def __init__(self, q: Quirks) -> None:
        self.as_str = q.numbers_as_strings
        self.as_float = q.float_numbers

    def __call__(self, v: int) -> int | float | str:
        if self.as_str:
            return str(v)
        return float(v) if self.as_float else v


def _tags(s: Service) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in s.tags.items()]


def _schedule(s: Service, num: _Num) -> list[dict[str, Any]]:
    if s.schedule is None or s.due_time is None:
        return []
    duration, unit = s.schedule
    processed = s.v2_status == "STOPPED" and s.due_time <= s.update_at
    return [
        {"due_time": num(s.due_time), "duration": duration, "time_unit": unit, "type": "STOP", "processed": processed}
    ]


def status(s: Service) -> str:
    return s.v2_status or "RUNNING"


def list_row(s: Service, q: Quirks) -> dict[str, Any]:
    """One ``ServiceItem``: no failure reason, no URL, no per-deployment status (those are details only)."""
    num = _Num(q)
    d: dict[str, Any] = {
        "id": s.service_id,
        "name": s.service_name,
        "status": status(s),
        "version": v2_fields.version(s),
        "version_count": num(v2_fields.version_count(s)),
        "description": s.description,
        "type": v2_fields.v2_type(s),
        "deploy_type": v2_fields.deploy_type(s),
        "user_name": v2_fields.user_name(s),
        "workspace_id": s.workspace_id,
        "create_at": num(s.create_at),
        "update_at": num(s.update_at),
        "auth_type": v2_fields.auth_type(s),
        "task_type": v2_fields.task_type(s),
        "tags": _tags(s),
        "schedule": _schedule(s, num),
        "frozen_infos": [],
    }
    if q.unknown_fields:
        d["new_field"] = dict(UNKNOWN_FIELD)
    return d


def encoded_row(s: Service, q: Quirks) -> bytes:
    """The cached encoding of ``list_row`` (cleared by Fleet.changed / clear_encoded)."""
    row = s.v2_row
    if row is None:
        row = s.v2_row = dumps(list_row(s, q))
    return row


def envelope_head(current: int, size: int, pages: int, total: int, q: Quirks) -> bytes:
    """The envelope's fields after ``data``, as bytes ending the JSON object."""
    num = _Num(q)
    head: dict[str, Any] = {"current": num(current), "size": num(size), "pages": num(pages), "total": num(total)}
    if q.unknown_fields:
        head["new_field"] = dict(UNKNOWN_FIELD)
    return dumps(head)[1:]


def _predict_url(s: Service) -> str:
    return f"https://{s.service_id[:8]}.infer.modelarts.cn-north-4.myhuaweicloud.com/v2/infers/{s.service_id}"


def _instance_groups(s: Service, num: _Num) -> list[dict[str, Any]]:
    """One deployment per model, each with its desired and running instance counts, flavor and pool."""
    x = extras(s)
    group_status, share = _GROUP.get(status(s), (status(s), 0.0))
    pool_id, _ = v2_fields.pool(s)
    groups = []
    for i, (model_id, model_name, model_version, weight) in enumerate(s.models):
        static = x["configs"][i] if i < len(x["configs"]) else x["configs"][0]
        count = static["instance_count"]
        running = count if share == 1.0 else 0 if share == 0.0 else (count - 1 if i == 0 else count)
        g_status = group_status if i == 0 or group_status != "CONCERNING" else "RUNNING"
        deployment_id = f"{s.service_id[:24]}{i:012x}"
        groups.append(
            {
                "id": deployment_id,
                "name": f"{s.service_name}-{i + 1}",
                "pool_id": pool_id,
                "count": num(count),
                "unit_configs": [
                    {
                        "id": f"{deployment_id[:-4]}u{i:03d}",
                        "name": "unit-1",
                        "role": "COMMON",
                        "flavor": static["specification"],
                        "models": [
                            {
                                "source": "OBS",
                                "address": f"obs://models/{model_name}/{model_version}/",
                                "asset_id": model_id,
                            }
                        ],
                        "count": num(count),
                    }
                ],
                "weight": weight,
                "traffic_ratio": f"{weight if group_status in _SERVING else 0:.2f}%",
                "framework": "COMMON",
                "version": model_version,
                "status": g_status,
                "running_count": num(running),
                "deploy_type": v2_fields.deploy_type(s),
                "workload_type": "DEPLOYMENT",
                "update_at": num(s.update_at),
                "create_at": num(s.create_at),
                "infer_name": deployment_id,
                "description": "",
            }
        )
    return groups


def details(s: Service, q: Quirks | None = None) -> dict[str, Any]:
    """The ``GET /v2/{project_id}/services/{service_id}`` object. With ``q`` None: no quirks."""
    q = q or _PLAIN
    num = _Num(q)
    st = status(s)
    serving = st in _SERVING
    url = _predict_url(s) if serving else ""
    d: dict[str, Any] = {
        "id": s.service_id,
        "name": s.service_name,
        "workspace_id": s.workspace_id,
        "type": v2_fields.v2_type(s),
        "deploy_type": v2_fields.deploy_type(s),
        "status": st,
    }
    if s.error_msg:  # set on entering FAILED or ERROR, cleared on recovery (Fleet.set_status)
        d["failure_reason"] = s.error_msg
    d["version"] = {
        "id": f"{s.service_id[:28]}{v2_fields.version_count(s):08x}",
        "version": v2_fields.version(s),
        "description": s.description,
        "predict_url": url,
        "runtime_config": {
            "service_invoke": {
                "port": 8080,
                "protocol": "HTTPS",
                "auth_type": v2_fields.auth_type(s),
                "internet_access_enable": False,
            },
            "smart_routing_enable": False,
        },
        "upgrade_config": {"type": "ROLLING", "rolling_update": {"max_surge": "1%", "max_unavailable": "1%"}},
        "instance_groups": _instance_groups(s, num),
        "lts_strategy": "DEFAULT",
        "lts_status": "ON",
        "lts_event_status": "ON",
        "lts_file_status": "OFF",
        "log_configs": [],
        "deploy_timeout_minutes": 20,
    }
    d["predict_url"] = [{"type": "PUBLIC", "urls": [url] if serving else []}]
    d["dispatcher_group_id"] = f"dg-{s.detail_seed:08x}"
    d["tags"] = _tags(s)
    d["deploy_timeout_minutes"] = 20
    d["schedule"] = _schedule(s, num)
    d["create_at"] = num(s.create_at)
    d["update_at"] = num(s.update_at)
    d["task_type"] = v2_fields.task_type(s)
    d["provider"] = ""
    d["frozen_infos"] = []
    if q.unknown_fields:
        d["new_field"] = dict(UNKNOWN_FIELD)
    return d
