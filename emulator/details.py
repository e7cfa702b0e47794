"""Status-independent details of a service (configs, nodes, network), derived lazily and cached.

Only the details API needs these, and only for the services someone asks about, so generating them for the
whole fleet up front would waste most of the start-up time. ``extras`` derives them from the service's own
seed, so they are the same however often or late they are asked for.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from services_bot.emulator import words
from services_bot.emulator.fleet import Service, hex32, uuid4_str

REGION = "cn-north-4"


def node_time(ms: int) -> str:
    """Nodes times are strings ``YYYY-MM-DDThh:mm:ss`` in UTC, without zone or fraction (Q07)."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def extras(s: Service) -> dict[str, Any]:
    """The cached, lazily derived parts of ``s``'s details."""
    if s.detail is not None:
        return s.detail
    r = random.Random(s.detail_seed)
    team = s.tags.get("team", "ml")
    d: dict[str, Any] = {}
    if s.infer_type != "edge" and r.random() < 0.35:
        d["cluster_id"] = uuid4_str(r)
        d["pool_name"] = f"pool-{r.getrandbits(32):08x}"
    if s.infer_type == "real-time" and r.random() < 0.2:
        d["vpc_id"] = uuid4_str(r)
        d["subnet_network_id"] = uuid4_str(r)
        d["security_group_id"] = uuid4_str(r)
    apig = f"{hex32(r)}.apig.{REGION}.huaweicloudapis.com"
    if s.infer_type == "real-time":
        path = f"{d['cluster_id']}/{s.service_id}" if "cluster_id" in d else s.service_id
        d["access_address"] = f"https://{apig}/v1/infers/{path}"
        if r.random() < 0.05:
            d["bind_access_address"] = f"https://{s.name_lower}.ai.example.com"

    nodes: list[dict[str, Any]] = []
    if s.infer_type == "edge":
        site = ("factory", "store", "branch", "depot")[int(r.random() * 4)]
        for i in range(1 + int(r.random() * 3)):
            os_type, os_name, os_version, arch = words.OS_CHOICES[int(r.random() * len(words.OS_CHOICES))]
            ip = f"192.168.{int(r.random() * 250)}.{2 + int(r.random() * 250)}"
            created = s.publish_at - int(r.random() * 30 * 86_400_000)
            gpu = r.random() < 0.3
            nodes.append(
                {
                    "memory": (8192, 16384, 32768)[int(r.random() * 3)],
                    "os_version": os_version,
                    "cpu": (4, 8, 16)[int(r.random() * 3)],
                    "created_at": node_time(created),
                    "description": f"{site} edge box {i + 1}",
                    "predict_url": f"https://{ip}:1860/v1/infers/{s.service_id}",
                    "enable_gpu": gpu,
                    "gpu_num": 1 if gpu else 0,
                    "host_ips": [ip],
                    "updated_at": node_time(max(created, s.update_time)),
                    "node_label": f"{team}-{site}",
                    "os_type": os_type,
                    "name": f"edge-{site}-{r.getrandbits(16):04x}",
                    "os_name": os_name,
                    "arch": arch,
                    "id": uuid4_str(r),
                    "deployment_num": 1 + int(r.random() * 3),
                    "host_name": f"{site}-{r.getrandbits(16):04x}.edge.local",
                }
            )
    d["nodes"] = nodes

    configs: list[dict[str, Any]] = []
    for _model in s.models:
        spec = words.SPECIFICATIONS[int(r.random() * len(words.SPECIFICATIONS))]
        c: dict[str, Any] = {"specification": spec}
        if spec == "custom":
            if r.random() < 0.5:
                c["custom_spec"] = {}  # as the spec example prints it (Q13)
            elif r.random() < 0.5:
                c["custom_spec"] = {"gpu_p4": 1.0, "memory": 16384, "cpu": 4.5}
            else:
                c["custom_spec"] = {"memory": 8192, "cpu": 2.0, "ascend_a310": 1}
        c["envs"] = {} if r.random() < 0.6 else {"MODEL_THREADS": str(1 + int(r.random() * 8)), "LOG_LEVEL": "info"}
        if s.infer_type == "edge":
            c["instance_count"] = len(nodes)
        elif s.infer_type == "batch":
            c["instance_count"] = 1 + int(r.random() * 2)
        else:
            c["instance_count"] = 1 + int(r.random() * 4)
        c["scaling"] = s.infer_type == "real-time" and r.random() < 0.3
        c["support_debug"] = s.infer_type == "real-time" and r.random() < 0.2
        if r.random() < 0.05:
            c["source_type"] = "auto"
        if s.infer_type == "batch":
            c["src_path"] = f"obs://ml-input/{team}/{s.name_lower}/"
            c["dest_path"] = f"obs://ml-output/{team}/{s.name_lower}/"
            c["req_uri"] = "/"
            if r.random() < 0.3:
                c["mapping_type"] = "csv"
                c["mapping_rule"] = {
                    "type": "object",
                    "properties": {"data": {"type": "object", "properties": {"req_data": {"type": "array"}}}},
                }
            else:
                c["mapping_type"] = "file"
            if r.random() < 0.2:
                c["src_type"] = "ManifestFile"
        configs.append(c)
    d["configs"] = configs
    d["debug_url"] = (
        f"https://{apig}/v1/debug/{s.service_id}"
        if len(configs) == 1 and configs[0]["support_debug"] and configs[0]["instance_count"] == 1
        else None
    )
    s.detail = d
    return d


_CONFIG_STATUS = {
    "running": "running",
    "failed": "failed",
    "stopped": "stopped",
    "stopping": "stopped",
    "deleting": "stopped",
    "finished": "finished",
}
_NODE_STATUS = {"running": "running", "failed": "failed", "stopped": "stopped", "finished": "stopped"}


def config_status(service_status: str, index: int) -> str:
    """Per-model status: ``notReady`` while starting or degraded (Q09), else mirrors the service."""
    if service_status == "concerning":
        return "notReady" if index == 0 else "running"
    return _CONFIG_STATUS.get(service_status, "notReady")


def node_state(service_status: str, index: int) -> tuple[str, str, str | None]:
    """(instance_status, host state, message) for edge node ``index`` of a service in ``service_status``."""
    if service_status == "concerning" and index == 0:
        return "failed", "RUNNING", "Model instance restarted 5 times in 10 minutes (liveness probe failed)"
    if service_status == "failed" and index == 0:
        return "failed", "UNCONNECTED", "Heartbeat lost for 15 minutes"
    status = _NODE_STATUS.get(service_status, "notReady")
    if service_status in ("stopping", "deleting"):
        status = "stopped"
    message = "Waiting for the model image to be pulled" if status == "notReady" else None
    return status, "RUNNING", message
