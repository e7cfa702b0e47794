"""The fields of a service's details an engineer wants and the list view hides, and its console link.

``additional_properties`` is documented as ``Map<String,String>`` but read as nested objects elsewhere (quirks
appendix: ``smn_notification.topic_urn``, ``log_report_channels[].type``), and a string value may itself be
JSON: both readings are accepted, and a flat ``smn_topic_urn`` too. The surfaces render the pairs returned
here; they do not dig in the details.

The console link is not documented anywhere the spec could read: it follows the pattern
``https://{host}/modelarts/?region={region}#/model-deployment/real-time/{service_id}`` (``CONSOLE_PATH``), with the
host configurable for other clouds (``SERVICES_BOT_CONSOLE_HOST``) and the region from the target.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote

from services_bot.core.config import Target
from services_bot.core.models import Service

ConsoleLink = Callable[[str | None, str], str | None]
"""(target name, service id) → the service's console page, or None: what alerts get from the wiring."""

CONSOLE_PATH = "/modelarts/?region={region}#/model-deployment/real-time/{service_id}"
MAX_FIELD_CHARS = 300


def _object(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= MAX_FIELD_CHARS else text[: MAX_FIELD_CHARS - 1] + "…"


def hidden_fields(service: Service) -> list[tuple[str, str]]:
    """(label, value) pairs, in reading order: notification topic, log channels, debug address, batch paths, and
    each model's pool and scaling."""
    out: list[tuple[str, str]] = []
    props = service.additional_properties or {}
    smn = _object(props.get("smn_notification") or props.get("smn_topic_urn"))
    if isinstance(smn, dict) and smn.get("topic_urn"):
        out.append(("SMN topic", _text(smn["topic_urn"])))
    elif smn:
        out.append(("SMN topic", _text(smn)))
    channels = _object(props.get("log_report_channels"))
    if isinstance(channels, list) and channels:
        kinds = [str(c.get("type", "?")) if isinstance(c, dict) else str(c) for c in channels]
        out.append(("log channels", _text(", ".join(kinds))))
    elif channels:
        out.append(("log channels", _text(channels)))
    if service.debug_url:
        out.append(("debug URL", _text(service.debug_url)))
    for config in service.config or []:
        name = config.model_name or config.model_id or "model"
        if config.src_path:
            out.append((f"{name} input", _text(config.src_path)))
        if config.dest_path:
            out.append((f"{name} output", _text(config.dest_path)))
        pool = config.pool_name or config.cluster_id
        if pool or config.scaling:  # a shared pool without autoscaling is the default: nothing to point out
            parts = [f"pool {pool}" if pool else "shared pool"]
            if config.scaling is not None:
                parts.append("autoscaling on" if config.scaling else "autoscaling off")
            out.append((f"{name} resources", _text(", ".join(parts))))
    return out


def console_url(service_id: str, region: str | None, host: str) -> str | None:
    """The service's page in the ModelArts console, or None when the region is unknown (an emulator or a bare
    endpoint with no region set)."""
    if not region or not host:
        return None
    path = CONSOLE_PATH.format(region=quote(region, safe=""), service_id=quote(service_id, safe=""))
    return f"https://{host.strip().rstrip('/')}{path}"


def console_links(targets: Iterable[Target], host: str) -> ConsoleLink:
    """Console links for the services of ``targets``, each in its target's region."""
    regions = {t.name: t.region for t in targets}
    return lambda target, service_id: console_url(service_id, regions.get(target or ""), host)
