"""A service's events, monitor, update logs, deployments and instances, derived from its current state.

The emulator keeps no event history: what these endpoints show is a pure function of the service as churn
left it, so it always agrees with the list and the details. A service is deployed at ``publish_at`` (the five
deployment phases of ``obtaining_service_event_logs.rst``, as normal events), then what its status says:

- failed (v2 FAILED/ERROR): abnormal events just before ``transition_at``, the last one quoting ``error_msg``;
- concerning: an abnormal "instance not ready" event at ``transition_at``, and one instance fewer running than
  wanted in the monitor and in the v2 instances;
- stopped/stopping: a normal "stopped" event.

Update logs (v1 ``/logs``) hold one update per release: at ``create_at`` (the first deployment) and at
``update_time`` when a redeploy moved it, with the result of the status (FAIL, RUNNING, SUCCESS).
"""

from __future__ import annotations

import random
from typing import Any

from services_bot.emulator import render_v2
from services_bot.emulator.details import extras
from services_bot.emulator.fleet import Service

SECOND_MS = 1000

# (seconds after publish_at, text); {m} is "name version" of the first model
_DEPLOY_STEPS: tuple[tuple[int, str], ...] = (
    (0, "start to deploy service"),
    (2, "building image for model [{m}]"),
    (20, "model ({m}) build image success"),
    (24, "preparing environment"),
    (44, "[{m}] prepare environment success"),
    (45, "[{m}] schedule resource success"),
    (46, "[{m}] pulling model image"),
    (100, "[{m}] pull image success"),
    (101, "[{m}] starting model"),
)
_DEPLOYING_STEPS = 4  # a service still deploying shows the first steps only
_CN = {"normal": "服务事件", "warning": "服务告警", "abnormal": "服务异常"}


def _model(s: Service) -> str:
    if not s.models:
        return s.service_name
    _, name, version, _ = s.models[0]
    return f"{name} {version}"


_SILENT_CAUSES = (
    "schedule resource failed: insufficient resources in the dedicated pool",
    "pull image failed: manifest unknown",
    "health check failed: container exited with code 137 (OOMKilled)",
)


def _cause(s: Service) -> str:
    """The failure's cause: its ``error_msg``, or (a service failed with none) one the events alone tell."""
    return s.error_msg or _SILENT_CAUSES[s.detail_seed % len(_SILENT_CAUSES)]


def timeline(s: Service) -> list[dict[str, Any]]:
    """Every event of ``s``, oldest first: ``{"at": ms, "kind": normal|warning|abnormal, "text", "count",
    "first": ms}`` (``count``/``first`` as v2 aggregates repeats; v1 shows only the last occurrence)."""
    m = _model(s)
    steps = _DEPLOY_STEPS[:_DEPLOYING_STEPS] if s.status in ("deploying", "pending", "waiting") else _DEPLOY_STEPS
    ended = s.transition_at if s.status in ("failed", "concerning", "stopped", "stopping") else None
    start = s.publish_at or s.create_at
    if ended is not None and ended - start < _DEPLOY_STEPS[-1][0] * SECOND_MS:
        start = ended - (_DEPLOY_STEPS[-1][0] + 10) * SECOND_MS  # it failed while deploying: the steps came first
    out = [
        {"at": start + sec * SECOND_MS, "kind": "normal", "text": text.format(m=m), "count": 1}
        for sec, text in steps
        if ended is None or start + sec * SECOND_MS < ended
    ]
    at = s.transition_at
    if s.status == "failed":
        repeats = 1 + random.Random(s.detail_seed).randrange(5)
        out.append(
            {
                "at": max(start, at - 60 * SECOND_MS),
                "first": max(start, at - (60 + 30 * repeats) * SECOND_MS),
                "kind": "warning",
                "text": f"[{m}] startup probe failed: HTTP GET /health connection refused",
                "count": repeats,
            }
        )
        out.append(
            {"at": at, "kind": "abnormal", "text": f"[{m}] model start failed: {_cause(s)}", "count": 1}
        )
    elif s.status == "concerning":
        out.append(
            {"at": at, "kind": "abnormal", "text": f"[{m}] 1 instance not ready: health check failed", "count": 1}
        )
    elif s.status in ("stopped", "stopping"):
        out.append(
            {
                "at": at,
                "kind": "normal",
                "text": "service stopped" if s.status == "stopped" else "stopping service",
                "count": 1,
            }
        )
    out.sort(key=lambda e: e["at"])
    return out


def v1_event(e: dict[str, Any]) -> dict[str, Any]:
    """v1 knows normal and abnormal only: a warning is abnormal there."""
    return {
        "occur_time": e["at"],
        "event_type": "normal" if e["kind"] == "normal" else "abnormal",
        "event_info": e["text"],
    }


def v2_event(s: Service, e: dict[str, Any], index: int, version_id: str) -> dict[str, Any]:
    return {
        "id": f"{s.service_id[:24]}{index:012x}",
        "service_id": s.service_id,
        "service_version_id": version_id,
        "event_count": e["count"],
        "event_type": e["kind"].upper(),
        "event_info": e["text"],
        "event_info_cn": f"{_CN[e['kind']]}：{e['text']}",
        "create_at": e.get("first", e["at"]),
        "update_at": e["at"],
    }


def _running_share(s: Service, wanted: int, first: bool) -> int:
    if s.status == "running":
        return wanted
    if s.status == "concerning":
        return wanted - 1 if first else wanted
    return 0


def monitor(s: Service) -> dict[str, Any]:
    """The v1 ``/monitor`` answer (OTC-2025 fields), one entry per model."""
    x = extras(s)
    r = random.Random(s.detail_seed ^ 0x5EED)
    monitors = []
    running_total = wanted_total = 0
    for i, (model_id, model_name, model_version, _) in enumerate(s.models):
        static = x["configs"][i] if i < len(x["configs"]) else x["configs"][0]
        wanted = static["instance_count"] if s.status not in ("stopped", "stopping") else 0
        running = _running_share(s, wanted, i == 0)
        running_total += running
        wanted_total += wanted
        cores = 2.0 * max(wanted, 1)
        memory = 4096 * max(wanted, 1)
        busy = running / wanted if wanted else 0.0
        monitors.append(
            {
                "model_id": model_id,
                "model_name": model_name,
                "model_version": model_version,
                "invocation_times": s.invocation_times,
                "failed_times": s.failed_times,
                "cpu_core_usage": round(cores * busy * (0.2 + 0.6 * r.random()), 2),
                "cpu_core_total": cores,
                "cpu_memory_usage": int(memory * busy * (0.3 + 0.5 * r.random())),
                "cpu_memory_total": memory,
                "gpu_usage": 0.0,
                "gpu_total": 0.0,
                "model_running_instance_count": running,
                "model_instance_count": wanted,
            }
        )
    return {
        "service_id": s.service_id,
        "service_name": s.service_name,
        "service_running_instance_count": running_total,
        "service_instance_count": wanted_total,
        "req_count_per_min": int(40 * running_total * r.random()),
        "monitors": monitors,
    }


def update_logs(s: Service) -> dict[str, Any]:
    """The v1 ``/logs`` answer: the first deployment and, after a redeploy, the latest update."""
    x = extras(s)
    config = [
        {
            "model_id": model_id,
            "model_name": model_name,
            "model_version": model_version,
            "weight": weight,
            "specification": (x["configs"][i] if i < len(x["configs"]) else x["configs"][0])["specification"],
            "instance_count": (x["configs"][i] if i < len(x["configs"]) else x["configs"][0])["instance_count"],
        }
        for i, (model_id, model_name, model_version, weight) in enumerate(s.models)
    ]
    latest = s.update_time or s.publish_at
    result = (
        "FAIL" if s.status == "failed" else "RUNNING" if s.status in ("deploying", "pending", "waiting") else "SUCCESS"
    )
    logs = [{"update_time": latest, "result": result, "config": config}]
    first = s.create_at or s.publish_at
    if first and first < latest:
        logs.append({"update_time": first, "result": "SUCCESS", "config": config})
    return {"service_id": s.service_id, "service_name": s.service_name, "logs": logs}


def deployments(s: Service) -> list[dict[str, Any]]:
    """v2 deployments (the details' instance groups, in the list's item shape)."""
    groups = render_v2.details(s)["version"]["instance_groups"]
    return [
        {
            "id": g["id"],
            "name": g["name"],
            "infer_name": g["infer_name"],
            "status": g["status"],
            "weight": g["weight"],
            "traffic_ratio": g["traffic_ratio"],
            "pool_id": g["pool_id"],
            "version": g["version"],
            "deploy_type": g["deploy_type"],
            "create_at": g["create_at"],
            "update_at": g["update_at"],
            "frozen_infos": [],
            "_count": g["count"],
            "_running": g["running_count"],
        }
        for g in groups
    ]


def instances(s: Service, deployment: str) -> list[dict[str, Any]] | None:
    """One instance per deployment, its pods counted (``all``: of every deployment); None for an unknown name."""
    chosen = [d for d in deployments(s) if deployment in ("all", d["name"])]
    if not chosen:
        return None
    return [
        {
            "instance_name": f"{d['name']}-0",
            "status": "RUNNING" if d["_running"] == d["_count"] and d["_count"] else d["status"],
            "weight": d["weight"],
            "pod_count": d["_count"],
            "running_pod_count": d["_running"],
            "update_at": d["update_at"],
        }
        for d in chosen
    ]


def public(deployment: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in deployment.items() if not k.startswith("_")}
