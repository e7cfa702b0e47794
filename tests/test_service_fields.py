"""The detail fields the list hides (notification topic, log channels, debug URL, pools, batch paths) are shown
whichever way ``additional_properties`` is spelt, and the console link is built from the region and the id."""

from __future__ import annotations

import json

from services_bot.core.models import Service
from services_bot.core.service_fields import console_url, hidden_fields

from tests.conftest import Control
from tests.test_cli import env_for, run


def fields(**details: object) -> dict[str, str]:
    return dict(hidden_fields(Service.model_validate({"service_id": "s1", **details})))


def test_notification_topic_and_log_channels_in_every_spelling() -> None:
    nested = {"smn_notification": {"topic_urn": "urn:smn:eu-de:p:ocr", "events": [1, 7]},
              "log_report_channels": [{"type": "LTS"}]}  # fmt: skip
    as_strings = {key: json.dumps(value) for key, value in nested.items()}
    flat = {"smn_topic_urn": "urn:smn:eu-de:p:ocr", "log_report_channels": "LTS"}
    for props in (nested, as_strings, flat):
        shown = fields(additional_properties=props)
        assert shown["SMN topic"] == "urn:smn:eu-de:p:ocr" and shown["log channels"] == "LTS", props


def test_debug_url_pools_scaling_and_batch_paths() -> None:
    shown = fields(
        debug_url="https://debug.example/ocr",
        config=[
            {"model_name": "ocr", "cluster_id": "pool-1", "scaling": True},
            {"model_name": "batch-job", "src_path": "obs://in/", "dest_path": "obs://out/"},
            {"model_name": "plain", "scaling": False},
        ],
    )
    assert shown["debug URL"] == "https://debug.example/ocr"
    assert shown["ocr resources"] == "pool pool-1, autoscaling on"
    assert shown["batch-job input"] == "obs://in/" and shown["batch-job output"] == "obs://out/"
    assert "plain resources" not in shown  # a shared pool without autoscaling is the default
    assert fields() == {}


def test_console_url_needs_a_region_and_quotes_the_parts() -> None:
    assert console_url("a b", "eu-de", "console.example.test/") == (
        "https://console.example.test/modelarts/?region=eu-de#/model-deployment/real-time/a%20b"
    )
    assert console_url("s1", None, "console.huaweicloud.com") is None


def test_ask_show_prints_the_hidden_fields(emulator_server, control: Control) -> None:  # type: ignore[no-untyped-def]
    project, token = emulator_server.settings.project_id, emulator_server.settings.token
    rows = control.list_raw(project, token)["services"]
    with_props = next(r for r in rows if control.get(f"/services/{r['service_id']}").get("additional_properties"))
    proc = run(["ask", "show", with_props["service_id"]], env_for(emulator_server))
    assert proc.returncode == 0, proc.stderr
    assert "SMN topic:" in proc.stdout and "urn:smn:" in proc.stdout and "log channels:" in proc.stdout
