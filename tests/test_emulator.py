"""The emulator against the spec: shapes, filters, paging, errors, auth, controls, faults, quirks, churn.

Everything goes over real loopback HTTP to an ``EmulatorServer`` on a free port, with plain httpx (never
``core/``: the emulator and the client are two independent readings of the spec). AK/SK signing is checked
with huaweicloudsdkcore's own signer.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from services_bot.emulator import EmulatorServer, EmulatorSettings, add_arguments, create_app, settings_from_args
from services_bot.emulator.fleet import build_fleet
from services_bot.emulator.query import PagingRules, parse_list_query, run_list_query
from services_bot.emulator.quirks import Quirks
from services_bot.emulator.render import encoded_row
from starlette.datastructures import QueryParams

# -- the spec's tables, as field sets ------------------------------------------------------------------
LIST_FIELDS = {  # list-services.md Table 5
    "failed_times", "owner", "due_time", "finished_time", "infer_type", "service_name", "description",
    "project", "invocation_times", "publish_at", "workspace_id", "schedule", "start_time", "operation_time",
    "is_shared", "service_id", "progress", "shared_count", "tenant", "status", "is_opened_sample_collection",
    "transition_at", "is_free", "additional_properties",
}  # fmt: skip
EXAMPLE_LIST_FIELDS = {  # the fields of the list example (fixtures/list-services-example.json)
    "failed_times", "owner", "infer_type", "service_name", "description", "project", "invocation_times",
    "publish_at", "workspace_id", "is_shared", "service_id", "shared_count", "tenant", "status",
}  # fmt: skip
DETAIL_FIELDS = {  # show-service.md Table 3
    "service_id", "service_name", "description", "tenant", "project", "owner", "publish_at", "infer_type",
    "workspace_id", "cluster_id", "vpc_id", "subnet_network_id", "security_group_id", "status", "progress",
    "error_msg", "config", "access_address", "bind_access_address", "invocation_times", "failed_times",
    "is_shared", "shared_count", "schedule", "update_time", "debug_url", "due_time", "operation_time",
    "transition_at", "is_free", "additional_properties", "pool_name",
}  # fmt: skip
CONFIG_FIELDS = {  # Table 4
    "model_version", "finished_time", "custom_spec", "envs", "specification", "weight", "source_type",
    "model_id", "src_path", "req_uri", "mapping_type", "start_time", "cluster_id", "nodes", "mapping_rule",
    "model_name", "src_type", "dest_path", "instance_count", "status", "scaling", "support_debug",
    "additional_properties", "pool_name",
}  # fmt: skip
NODE_FIELDS = {  # Table 6
    "memory", "os_version", "cpu", "created_at", "description", "message", "predict_url", "enable_gpu",
    "gpu_num", "host_ips", "updated_at", "node_label", "os_type", "name", "os_name", "arch", "id",
    "instance_status", "state", "deployment_num", "host_name",
}  # fmt: skip
LEGACY_FIELDS = {  # legacy-infer-services.md Table 3
    "service_id", "service_name", "description", "infer_type", "status", "is_shared", "invocation_times",
    "failed_times", "publish_time", "update_time",
}  # fmt: skip
STATUSES = ["running", "deploying", "concerning", "failed", "stopped", "finished", "stopping", "deleting", "pending",
            "waiting"]  # fmt: skip
SETTINGS = EmulatorSettings(port=0, services=3000, seed=7)


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(SETTINGS) as server:
        yield server


@pytest.fixture(scope="module")
def client(emu: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, headers={"X-Auth-Token": emu.settings.token}, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def anon(emu: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=10) as c:
        yield c


@pytest.fixture(autouse=True)
def _clear_faults_and_quirks(client: httpx.Client) -> Iterator[None]:
    yield
    client.delete("/_emulator/faults")
    client.delete("/_emulator/quirks")


@pytest.fixture
def fresh(client: httpx.Client) -> None:
    """A pristine fleet for tests that count or compare."""
    assert client.post("/_emulator/reset", json={}).json() == {"services": SETTINGS.services}


P = f"/v1/{SETTINGS.project_id}"


def list_all(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    r = client.get(f"{P}/services", params={"limit": 100_000, **params})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] == len(body["services"]) == body["total_count"]
    return body["services"]


def add(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    r = client.post("/_emulator/services", json=fields)
    assert r.status_code == 201, r.text
    return r.json()


def is_ms(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 10**12 <= v < 10**13


# -- list ----------------------------------------------------------------------------------------------
def test_list_shape_defaults_and_request_id(client: httpx.Client, fresh: None) -> None:
    r = client.get(f"{P}/services")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
    assert client.get(f"{P}/services", params={"limit": 1}).headers["x-request-id"] != r.headers["x-request-id"]
    body = r.json()
    assert list(body) == ["total_count", "count", "services"]
    assert body["count"] == len(body["services"]) == min(1000, body["total_count"])
    assert 1000 < body["total_count"] < SETTINGS.services  # default workspace only (Q29), default limit 1000
    for row in body["services"]:
        assert EXAMPLE_LIST_FIELDS <= set(row) <= LIST_FIELDS, set(row) ^ LIST_FIELDS
        assert row["workspace_id"] == "0"
        assert row["status"] in STATUSES
        assert row["infer_type"] in ("real-time", "batch", "edge")
        assert row["is_opened_sample_collection"] in ("true", "false")
        assert is_ms(row["publish_at"]) and is_ms(row["transition_at"]) and is_ms(row["operation_time"])
        assert all(isinstance(row[k], int) for k in ("invocation_times", "failed_times", "shared_count"))
        assert isinstance(row["is_shared"], bool) and isinstance(row["is_free"], bool)
        assert re.fullmatch(r"[0-9a-f]{32}", row["owner"]) and re.fullmatch(r"[0-9a-f]{32}", row["tenant"])
        assert ("progress" in row) == (row["status"] == "deploying")
        if "progress" in row:
            assert 0 <= row["progress"] <= 99
        if row["infer_type"] != "batch":
            assert "start_time" not in row and "finished_time" not in row
        if row["status"] == "finished":
            assert row["infer_type"] == "batch" and is_ms(row["finished_time"])
        if "schedule" in row:
            (sched,) = row["schedule"]
            assert sched["type"] == "stop" and sched["time_unit"] in ("DAYS", "HOURS", "MINUTES")
            assert isinstance(sched["duration"], int) and is_ms(row["due_time"])
        if "additional_properties" in row:
            assert all(isinstance(v, str) for v in row["additional_properties"].values())
    publish = [row["publish_at"] for row in body["services"]]
    assert publish == sorted(publish, reverse=True)  # default publish_at desc


def test_fleet_is_realistic(client: httpx.Client, fresh: None) -> None:
    rows = list_all(client)
    statuses = Counter(r["status"] for r in rows)
    types = Counter(r["infer_type"] for r in rows)
    assert statuses["running"] > len(rows) / 2
    assert {"stopped", "failed", "concerning", "deploying", "finished"} <= set(statuses)
    assert 0.7 < types["real-time"] / len(rows) < 0.9 and types["batch"] > types["edge"] > 0
    assert all(re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", r["service_name"]) for r in rows)


def test_filters(client: httpx.Client, fresh: None) -> None:
    rows = list_all(client)
    for status in ("failed", "running", "finished"):
        got = list_all(client, status=status)
        assert got and all(r["status"] == status for r in got)
        assert {r["service_id"] for r in got} == {r["service_id"] for r in rows if r["status"] == status}
    batch = list_all(client, infer_type="batch")
    assert batch and all(r["infer_type"] == "batch" for r in batch)
    target = rows[17]
    assert [r["service_id"] for r in list_all(client, service_id=target["service_id"])] == [target["service_id"]]
    # service_name: case-insensitive substring
    part = target["service_name"].split("-")[1]
    named = list_all(client, service_name=part.upper())
    assert target["service_id"] in {r["service_id"] for r in named}
    assert all(part in r["service_name"] for r in named)
    # model_id: any config entry
    detail = client.get(f"{P}/services/{target['service_id']}").json()
    model_id = detail["config"][0]["model_id"]
    by_model = list_all(client, model_id=model_id)
    assert target["service_id"] in {r["service_id"] for r in by_model}
    for r in by_model[:5]:
        cfg = client.get(f"{P}/services/{r['service_id']}").json()["config"]
        assert model_id in {c["model_id"] for c in cfg}
    # combined filters are ANDed
    both = list_all(client, status="running", infer_type="real-time")
    assert all(r["status"] == "running" and r["infer_type"] == "real-time" for r in both)
    assert list_all(client, status="running", service_id="no-such-id") == []


def test_workspace_and_tag_filters(client: httpx.Client) -> None:
    a = add(client, service_name="tagged-svc-a", workspace_id="ws-tags", tags={"team": "ocr", "env": "prod"})
    b = add(client, service_name="tagged-svc-b", workspace_id="ws-tags", tags={"team": "ocr", "env": "dev"})
    c = add(client, service_name="tagged-svc-c", workspace_id="ws-tags", tags={"tier": "gold"})
    assert {r["service_id"] for r in list_all(client, workspace_id="ws-tags")} == {
        a["service_id"], b["service_id"], c["service_id"]
    }  # fmt: skip
    assert a["service_id"] not in {r["service_id"] for r in list_all(client)}  # not in the default workspace

    def ids(tags: str) -> set[str]:
        return {r["service_id"] for r in list_all(client, workspace_id="ws-tags", tags=tags)}

    assert ids("team=ocr") == {a["service_id"], b["service_id"]}
    assert ids("team=ocr,env=prod") == {a["service_id"]}
    assert ids("tier") == {c["service_id"]}
    assert ids("team=nlp") == set()
    rows = list_all(client, workspace_id="ws-tags")
    assert all(r["workspace_id"] == "ws-tags" for r in rows)
    assert all("tags" not in r for r in rows)  # no response table has tags
    # generated services carry tags too, e.g. team=<the service's team>
    assert list_all(client, tags="env=prod")


def test_generated_workspaces_and_duplicate_names(emu: EmulatorServer, client: httpx.Client, fresh: None) -> None:
    workspaces = emu.state.fleet.generator.workspace_ids
    assert len(workspaces) == SETTINGS.workspaces and all(re.fullmatch(r"[0-9a-f]{32}", w) for w in workspaces)
    default_names = {r["service_name"] for r in list_all(client)}
    other = [r for w in workspaces for r in list_all(client, workspace_id=w)]
    assert all(r["workspace_id"] in workspaces for r in other)
    assert {r["service_name"] for r in other} & default_names  # same name in two workspaces (ambiguity)


@pytest.mark.parametrize("sort_by", ["publish_at", "service_name", "transition_at"])
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_sorting_is_total_with_service_id_tie_break(client: httpx.Client, sort_by: str, order: str) -> None:
    rows = list_all(client, sort_by=sort_by, order=order)
    keys = [(r[sort_by], r["service_id"]) for r in rows]
    assert keys == sorted(keys, reverse=order == "desc")


def test_sorting_ties(client: httpx.Client) -> None:
    made = [add(client, service_name="same-name-for-ties", workspace_id="ws-ties") for _ in range(4)]
    ids = sorted(m["service_id"] for m in made)
    asc = list_all(client, workspace_id="ws-ties", sort_by="service_name", order="asc")
    desc = list_all(client, workspace_id="ws-ties", sort_by="service_name", order="desc")
    assert [r["service_id"] for r in asc] == ids
    assert [r["service_id"] for r in desc] == ids[::-1]


def _pages(client: httpx.Client, mode: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = client.get(f"{P}/services", params={"offset": offset, "limit": limit, **params}).json()
        out.extend(body["services"])
        if body["count"] < limit:
            return out
        offset += 1 if mode == "page" else limit


@pytest.mark.parametrize("mode", ["page", "record"])
def test_paging_offset_modes(client: httpx.Client, mode: str) -> None:
    assert client.post("/_emulator/quirks", json={"offset_mode": mode}).json()["offset_mode"] == mode
    whole = list_all(client, sort_by="service_name", order="asc")
    paged = _pages(client, mode, 250, sort_by="service_name", order="asc")
    assert [r["service_id"] for r in paged] == [r["service_id"] for r in whole]
    # the detection a client does (quirks.md Q24): offset=1&limit=2 starts at record 2 or record 1
    second = client.get(f"{P}/services", params={"offset": 1, "limit": 2, "sort_by": "service_name", "order": "asc"})
    first_id = second.json()["services"][0]["service_id"]
    assert first_id == whole[2 if mode == "page" else 1]["service_id"]
    past = client.get(f"{P}/services", params={"offset": 10**6, "limit": 5}).json()
    assert past["services"] == [] and past["count"] == 0 and past["total_count"] == len(whole)


def test_offset_mode_setting_and_numeric_strings(client: httpx.Client) -> None:
    assert client.get("/_emulator/quirks").json()["offset_mode"] == SETTINGS.offset_mode
    r = client.get(f"{P}/services", params={"offset": "0", "limit": "5000", "order": "asc"})
    assert r.status_code == 200 and r.json()["count"] == r.json()["total_count"]  # no documented maximum


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"status": "faild"}, "status"),
        ({"status": "running,failed"}, "status"),
        ({"status": ["running", "failed"]}, "status"),
        ({"infer_type": "online"}, "infer_type"),
        ({"infer_type": "real-time,batch"}, "infer_type"),
        ({"sort_by": "name"}, "sort_by"),
        ({"order": "ascending"}, "order"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "abc"}, "offset"),
        ({"limit": "0"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"tags": "=x"}, "tags"),
    ],
)
def test_validation_errors(client: httpx.Client, params: dict[str, Any], name: str) -> None:
    r = client.get(f"{P}/services", params=params)
    assert r.status_code == 400
    body = r.json()
    assert set(body) == {"error_code", "error_msg"} and body["error_code"] == "ModelArts.0101"
    assert body["error_msg"].startswith(f"Invalid parameter {name}")
    if params == {"status": "faild"}:
        assert body["error_msg"] == (
            "Invalid parameter status: 'faild'. Valid values: running, deploying, concerning, failed, stopped, "
            "finished, stopping, deleting, pending, waiting."
        )


# -- details -------------------------------------------------------------------------------------------
def _check_config(detail: dict[str, Any]) -> None:
    config = detail["config"]
    assert isinstance(config, list) and config
    if detail["is_shared"]:
        assert all(set(c) == {"model_id", "model_name", "model_version"} for c in config)  # Q21
        return
    assert sum(c["weight"] for c in config) == 100
    for c in config:
        assert set(c) <= CONFIG_FIELDS, set(c) - CONFIG_FIELDS
        assert {"model_id", "model_name", "model_version", "specification", "weight", "instance_count", "status",
                "scaling", "support_debug", "envs", "additional_properties"} <= set(c)  # fmt: skip
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", c["model_id"])
        assert re.fullmatch(r"\d+\.\d+\.\d+", c["model_version"])
        if c["specification"] == "custom":
            assert isinstance(c["custom_spec"], dict)
        for node in c.get("nodes", []):
            assert set(node) <= NODE_FIELDS and NODE_FIELDS - {"message"} <= set(node)
            for key in ("created_at", "updated_at"):
                datetime.strptime(node[key], "%Y-%m-%dT%H:%M:%S")
            assert node["instance_status"] in ("running", "stopped", "notReady", "failed")
            assert node["state"] in ("RUNNING", "FAIL", "UNCONNECTED")
        if detail["infer_type"] == "batch":
            assert c["src_path"].startswith("obs://") and c["dest_path"].startswith("obs://")
            assert c["mapping_type"] in ("file", "csv") and "req_uri" in c


def test_show_details_shape(client: httpx.Client, fresh: None) -> None:
    seen: Counter[str] = Counter()
    for row in list_all(client)[:400]:
        r = client.get(f"{P}/services/{row['service_id']}")
        assert r.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
        d = r.json()
        assert set(d) <= DETAIL_FIELDS, set(d) - DETAIL_FIELDS
        assert {"service_id", "service_name", "status", "config", "progress", "transition_at", "update_time",
                "operation_time", "additional_properties", "workspace_id"} <= set(d)  # fmt: skip
        for key in ("service_id", "service_name", "status", "publish_at", "transition_at", "workspace_id", "owner"):
            assert d[key] == row[key]
        assert isinstance(d["additional_properties"], dict)
        assert ("error_msg" in d) == (d["status"] == "failed")
        assert ("access_address" in d) == (d["infer_type"] == "real-time")
        if "access_address" in d:
            assert d["access_address"].endswith("/" + d["service_id"]) and "/v1/infers/" in d["access_address"]
        if d["status"] == "deploying":
            assert 0 <= d["progress"] < 100
            assert d["config"][0].get("status", "notReady") == "notReady"  # Q09
        elif d["status"] in ("running", "stopped", "finished"):
            assert d["progress"] == 100
        if "due_time" in d:
            assert "schedule" in d
        _check_config(d)
        seen[d["infer_type"]] += 1
        seen["edge-with-nodes"] += any("nodes" in c for c in d["config"])
        seen["failed"] += d["status"] == "failed"
    assert seen["real-time"] and seen["batch"] and seen["edge"] and seen["edge-with-nodes"] and seen["failed"]


def test_failed_error_messages_are_realistic(client: httpx.Client) -> None:
    msgs = [
        client.get(f"{P}/services/{r['service_id']}").json()["error_msg"] for r in list_all(client, status="failed")
    ]
    assert msgs and all(isinstance(m, str) and len(m) > 20 for m in msgs)
    assert any(m.startswith(("Image pull failed", "Insufficient resources")) for m in msgs)


def test_show_unknown_service(client: httpx.Client) -> None:
    r = client.get(f"{P}/services/no-such-service")
    assert r.status_code == 404
    assert r.json() == {"error_code": "ModelArts.3502", "error_msg": "Service no-such-service does not exist."}
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])


# -- legacy --------------------------------------------------------------------------------------------
def test_legacy_list(emu: EmulatorServer, client: httpx.Client, anon: httpx.Client, fresh: None) -> None:
    r = client.get(f"{P}/infer-services")
    assert r.status_code == 200
    body = r.json()
    assert list(body) == ["is_success", "services"] and body["is_success"] is True
    rows = body["services"]
    assert {x["service_id"] for x in rows} == {x["service_id"] for x in list_all(client)}  # workspace 0, no paging
    for x in rows:
        assert LEGACY_FIELDS - {"description"} <= set(x) <= LEGACY_FIELDS
        assert isinstance(x["invocation_times"], str) and x["invocation_times"].isdigit()
        assert isinstance(x["failed_times"], str) and is_ms(x["publish_time"]) and is_ms(x["update_time"])
    ws = emu.state.fleet.generator.workspace_ids[0]
    other = client.get(f"{P}/infer-services", params={"workspace_id": ws}).json()["services"]
    assert {x["service_id"] for x in other} == {x["service_id"] for x in list_all(client, workspace_id=ws)}
    # errors use the legacy envelope; the documented example is the missing-token case
    r = anon.get(f"{P}/infer-services")
    assert r.status_code == 401
    assert r.json() == {
        "is_success": False,
        "error_code": "res.2301",
        "error_msg": "Failed to resolve the token from the request.",
    }
    r = anon.get(f"{P}/infer-services", headers={"X-Auth-Token": "bogus"})
    assert r.status_code == 401 and r.json()["is_success"] is False and r.json()["error_code"] == "APIGW.0301"
    client.post("/_emulator/quirks", json={"legacy_error_200": True})
    r = anon.get(f"{P}/infer-services")
    assert r.status_code == 200 and r.json()["is_success"] is False and "services" not in r.json()


# -- auth ----------------------------------------------------------------------------------------------
def test_auth_required_everywhere(anon: httpx.Client) -> None:
    for path in (f"{P}/services", f"{P}/services/x"):
        r = anon.get(path)
        assert r.status_code == 401
        assert r.json() == {
            "error_code": "APIGW.0301",
            "error_msg": "Incorrect IAM authentication information: missing X-Auth-Token (or an AK/SK signature)",
        }
        r = anon.get(path, headers={"X-Auth-Token": "not-a-token-secret-xyz"})
        assert r.status_code == 401 and r.json()["error_code"] == "APIGW.0301"
        assert "not-a-token-secret-xyz" not in r.text
        r = anon.get(path, headers={"Authorization": "Bearer abc"})
        assert r.status_code == 401


def test_other_project_is_forbidden(client: httpx.Client) -> None:
    for path in (
        "/v1/another-project/services",
        "/v1/another-project/services/x",
        "/v1/another-project/infer-services",
    ):
        r = client.get(path)
        assert r.status_code == 403
        assert r.json()["error_code"] == "ModelArts.0106" and "another-project" in r.json()["error_msg"]
    r = client.get(f"{P}/no-such-api")
    assert r.status_code == 404 and r.json()["error_code"] == "APIGW.0101"


def _iam_body(password: str = SETTINGS.iam_password, **scope: str) -> dict[str, Any]:
    return {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {"name": SETTINGS.iam_user, "password": password, "domain": {"name": SETTINGS.iam_domain}}
                },
            },
            "scope": {"project": scope or {"id": SETTINGS.project_id}},
        }
    }


def test_iam_token_issue_use_and_expiry(client: httpx.Client, anon: httpx.Client) -> None:
    before = datetime.now(UTC)
    r = anon.post("/v3/auth/tokens", json=_iam_body())
    assert r.status_code == 201
    token = r.headers["x-subject-token"]
    assert token and token not in r.text  # the token travels in the header only
    body = r.json()["token"]
    assert body["methods"] == ["password"] and body["project"]["id"] == SETTINGS.project_id
    assert body["user"]["name"] == SETTINGS.iam_user
    expires = datetime.strptime(body["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((expires - before - timedelta(seconds=SETTINGS.token_ttl_seconds)).total_seconds()) < 5
    assert anon.get(f"{P}/services", params={"limit": 1}, headers={"X-Auth-Token": token}).status_code == 200
    # by project name, too
    by_name = anon.post("/v3/auth/tokens", json=_iam_body(name="cn-north-4")).headers["x-subject-token"]
    assert anon.get(f"{P}/services", params={"limit": 1}, headers={"X-Auth-Token": by_name}).status_code == 200
    # a token for another project is forbidden here
    other = anon.post("/v3/auth/tokens", json=_iam_body(id="0123456789abcdef")).headers["x-subject-token"]
    assert anon.get(f"{P}/services", headers={"X-Auth-Token": other}).status_code == 403
    domain_scoped = _iam_body()
    domain_scoped["auth"]["scope"] = {"domain": {"name": SETTINGS.iam_domain}}
    r = anon.post("/v3/auth/tokens", json=domain_scoped)
    assert r.status_code == 201 and "project" not in r.json()["token"]
    r = anon.get(f"{P}/services", headers={"X-Auth-Token": r.headers["x-subject-token"]})
    assert r.status_code == 403 and "not scoped to a project" in r.json()["error_msg"]
    # forced expiry
    assert client.post("/_emulator/tokens/expire").status_code == 200
    r = anon.get(f"{P}/services", headers={"X-Auth-Token": token})
    assert r.status_code == 401
    assert r.json()["error_msg"] == "Incorrect IAM authentication information: token expired"
    # the static token is not affected
    assert client.get(f"{P}/services", params={"limit": 1}).status_code == 200
    counts = client.get("/_emulator/requests").json()["by_route"]
    assert counts["iam"] >= 3


def test_iam_errors(anon: httpx.Client) -> None:
    r = anon.post("/v3/auth/tokens", json=_iam_body(password="wrong"))
    assert r.status_code == 401
    assert r.json() == {
        "error": {"code": 401, "message": "The username or password is wrong.", "title": "Unauthorized"}
    }
    assert "x-subject-token" not in r.headers
    assert anon.post("/v3/auth/tokens", json=_iam_body(password="wrong-é-∂")).status_code == 401
    r = anon.post("/v3/auth/tokens", content=b"{not json")
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    r = anon.post("/v3/auth/tokens", json={"auth": {"identity": {"methods": ["password"]}}})
    assert r.status_code == 400 and "auth.identity.password.user" in r.json()["error"]["message"]


def test_token_ttl_fault(client: httpx.Client, anon: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"token_ttl_seconds": 0})
    r = anon.post("/v3/auth/tokens", json=_iam_body())
    issued = datetime.strptime(r.json()["token"]["issued_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    expires = datetime.strptime(r.json()["token"]["expires_at"], "%Y-%m-%dT%H:%M:%S.%fZ")
    assert expires == issued
    r = anon.get(f"{P}/services", headers={"X-Auth-Token": r.headers["x-subject-token"]})
    assert r.status_code == 401 and r.json()["error_msg"].endswith("token expired")


# -- AK/SK ---------------------------------------------------------------------------------------------
def _signed(
    emu: EmulatorServer,
    query: list[tuple[str, Any]],
    *,
    ak: str | None = None,
    sk: str | None = None,
    sdk_date: str | None = None,
    security_token: str | None = None,
    path: str = f"{P}/services",
    project_id: str | None = None,
) -> SdkRequest:
    """Sign like the official SDK does: build its SdkRequest and let its credentials sign it."""
    headers = {"Content-Type": "application/json"}
    if sdk_date:
        headers["X-Sdk-Date"] = sdk_date
    req = SdkRequest(
        method="GET",
        schema="http",
        host=emu.url.split("://", 1)[1],
        resource_path=path,
        query_params=query,
        header_params=headers,
        body="",
    )
    creds = BasicCredentials(ak or emu.settings.ak, sk or emu.settings.sk, project_id or emu.settings.project_id)
    if security_token:
        creds.security_token = security_token
    return creds.sign_request(req)


def test_aksk_signed_by_the_sdk_is_accepted(emu: EmulatorServer, anon: httpx.Client) -> None:
    req = _signed(emu, [("limit", 3), ("service_name", "a b~c/d+é"), ("order", "asc")])
    assert req.header_params["Authorization"].startswith("SDK-HMAC-SHA256 Access=")
    r = anon.get(req.url, headers=req.header_params)
    assert r.status_code == 200, r.text
    req = _signed(emu, [("limit", 2), ("status", "running")])
    r = anon.get(req.url, headers=req.header_params)
    assert r.status_code == 200 and r.json()["count"] == 2
    req = _signed(emu, [], path=f"{P}/infer-services")
    assert anon.get(req.url, headers=req.header_params).json()["is_success"] is True


def test_aksk_tampered_or_stale_is_refused(emu: EmulatorServer, anon: httpx.Client) -> None:
    def refused(url: str, headers: dict[str, str], why: str) -> None:
        r = anon.get(url, headers=headers)
        assert r.status_code == 401, r.text
        assert r.json()["error_code"] == "APIGW.0301" and why in r.json()["error_msg"]
        assert emu.settings.sk not in r.text

    req = _signed(emu, [("limit", 3)])
    sig = req.header_params["Authorization"]
    bad = {**req.header_params, "Authorization": sig[:-4] + ("0000" if not sig.endswith("0000") else "1111")}
    refused(req.url, bad, "signature mismatch")
    refused(req.url.replace("limit=3", "limit=4"), req.header_params, "signature mismatch")  # tampered query
    refused(req.url.replace("/services", "/services/x"), req.header_params, "signature mismatch")  # other path
    wrong_sk = _signed(emu, [("limit", 3)], sk="not-the-secret")
    refused(wrong_sk.url, wrong_sk.header_params, "signature mismatch")
    unknown = _signed(emu, [("limit", 3)], ak="UNKNOWNAK")
    refused(unknown.url, unknown.header_params, "unknown access key")
    stale = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y%m%dT%H%M%SZ")
    old = _signed(emu, [("limit", 3)], sdk_date=stale)
    refused(old.url, old.header_params, "expired")
    within = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y%m%dT%H%M%SZ")
    ok = _signed(emu, [("limit", 3)], sdk_date=within)
    assert anon.get(ok.url, headers=ok.header_params).status_code == 200
    # host must be signed: re-sign by hand without it
    from services_bot.emulator import signing

    headers = {"x-sdk-date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")}
    canonical = signing.canonical_request("GET", f"{P}/services", "", headers, ["x-sdk-date"], b"")
    auth = (
        f"SDK-HMAC-SHA256 Access={emu.settings.ak}, SignedHeaders=x-sdk-date, "
        f"Signature={signing.sign(emu.settings.sk, headers['x-sdk-date'], canonical)}"
    )
    refused(f"{emu.url}{P}/services", {"X-Sdk-Date": headers["x-sdk-date"], "Authorization": auth}, "host")


def test_aksk_query_is_read_like_the_gateway_reads_it(emu: EmulatorServer, anon: httpx.Client) -> None:
    """Split on '&' and '=', then ``unquote``: a '+' is a plus, so a space signed as %20 but sent as '+' (what
    a form encoder does) is a signature mismatch, as at Huawei's gateway (issue item 6)."""
    from services_bot.emulator import signing

    assert signing.canonical_query("service_name=ocr+prod&a=%7e&b") == "a=~&b=&service_name=ocr%2Bprod"
    req = _signed(emu, [("service_name", "ocr prod"), ("limit", 1)])
    assert "service_name=ocr%20prod" in req.url
    assert anon.get(req.url, headers=req.header_params).status_code == 200
    r = anon.get(req.url.replace("%20", "+"), headers=req.header_params)
    assert r.status_code == 401, r.text
    assert r.json()["error_code"] == "APIGW.0301" and r.json()["error_msg"].endswith("signature mismatch")


def test_aksk_signed_project_header_must_match_the_path(emu: EmulatorServer, anon: httpx.Client) -> None:
    """The SDK signs ``X-Project-Id`` for a project-scoped client; one naming another project is a 403."""
    req = _signed(emu, [("limit", 1)], project_id="another-project")
    assert "x-project-id" in req.header_params["Authorization"]
    r = anon.get(req.url, headers=req.header_params)
    assert r.status_code == 403, r.text
    assert r.json() == {
        "error_code": "ModelArts.0106",
        "error_msg": f"Forbidden: X-Project-Id another-project does not match the project {SETTINGS.project_id} in "
        "the URL.",
    }


def test_aksk_security_token() -> None:
    settings = EmulatorSettings(port=0, services=20, security_token="temp-security-token")
    with EmulatorServer(settings) as emu, httpx.Client(timeout=10) as c:
        good = _signed(emu, [("limit", 1)], security_token="temp-security-token")
        assert c.get(good.url, headers=good.header_params).status_code == 200
        missing = _signed(emu, [("limit", 1)])
        r = c.get(missing.url, headers=missing.header_params)
        assert r.status_code == 401 and "X-Security-Token" in r.json()["error_msg"]
        wrong = _signed(emu, [("limit", 1)], security_token="other-token")
        assert c.get(wrong.url, headers=wrong.header_params).status_code == 401


# -- control API ---------------------------------------------------------------------------------------
def test_control_status_change(client: httpx.Client) -> None:
    target = list_all(client, status="running")[0]
    sid = target["service_id"]
    before = int(time.time() * 1000)
    r = client.post(f"/_emulator/services/{sid}/status", json={"status": "failed", "error_msg": "boom: disk full"})
    assert r.status_code == 200
    d = r.json()
    assert d["status"] == "failed" and d["error_msg"] == "boom: disk full" and d["transition_at"] >= before
    assert set(d) <= DETAIL_FIELDS
    assert client.get(f"{P}/services/{sid}").json()["error_msg"] == "boom: disk full"
    last = client.get("/_emulator/transitions").json()["transitions"][-1]
    assert last == {
        "service_id": sid,
        "service_name": target["service_name"],
        "from_status": "running",
        "to_status": "failed",
        "transition_at": d["transition_at"],
    }
    assert sid in {x["service_id"] for x in list_all(client, status="failed")}
    # generated cause when none is given; cleared on leaving failed
    other = list_all(client, status="running")[0]["service_id"]
    msg = client.post(f"/_emulator/services/{other}/status", json={"status": "failed"}).json()["error_msg"]
    assert isinstance(msg, str) and msg
    d = client.post(f"/_emulator/services/{sid}/status", json={"status": "running"}).json()
    assert d["status"] == "running" and "error_msg" not in d
    # unknown statuses are allowed on purpose (Q08)
    d = client.post(f"/_emulator/services/{sid}/status", json={"status": "upgrading"}).json()
    assert d["status"] == "upgrading"
    assert next(x for x in list_all(client, service_id=sid))["status"] == "upgrading"
    assert client.post("/_emulator/services/nope/status", json={"status": "failed"}).status_code == 404
    assert client.post(f"/_emulator/services/{sid}/status", json={}).status_code == 400
    assert client.post(f"/_emulator/services/{sid}/status", content=b"[").status_code == 400


def test_control_changes_several_statuses_at_one_instant(client: httpx.Client) -> None:
    a, b = (s["service_id"] for s in list_all(client, status="running")[:2])
    changes = [{"service_id": a, "status": "failed", "error_msg": "x"}, {"service_id": b, "status": "concerning"}]
    assert client.post("/_emulator/statuses", json={"changes": changes}).json() == {"changed": 2}
    last = client.get("/_emulator/transitions").json()["transitions"][-2:]
    assert [t["to_status"] for t in last] == ["failed", "concerning"]
    assert last[0]["transition_at"] == last[1]["transition_at"]
    assert client.get(f"{P}/services/{a}").json()["error_msg"] == "x"
    nothing = {"changes": [{"service_id": b, "status": "running"}, {"service_id": "nope", "status": "failed"}]}
    assert client.post("/_emulator/statuses", json=nothing).status_code == 404
    assert client.get(f"{P}/services/{b}").json()["status"] == "concerning", "a bad batch changes nothing"
    assert client.post("/_emulator/statuses", json={"changes": []}).status_code == 400


def test_control_create_and_delete(client: httpx.Client) -> None:
    d = add(
        client,
        service_name="ocr-invoice-prod",
        infer_type="batch",
        status="deploying",
        model_id="m-123",
        tags={"team": "ocr"},
        service_id="svc-fixed-id",
    )
    assert d["service_id"] == "svc-fixed-id" and d["service_name"] == "ocr-invoice-prod"
    assert d["infer_type"] == "batch" and d["status"] == "deploying" and d["workspace_id"] == "0"
    assert d["config"][0]["model_id"] == "m-123"
    assert client.post("/_emulator/services", json={"service_id": "svc-fixed-id"}).status_code == 409
    assert client.get(f"{P}/services/svc-fixed-id").status_code == 200
    assert [x["service_id"] for x in list_all(client, model_id="m-123", tags="team=ocr")] == ["svc-fixed-id"]
    assert client.get("/_emulator/services/svc-fixed-id").json()["service_id"] == "svc-fixed-id"
    plain = add(client)
    assert plain["status"] == "running" and plain["workspace_id"] == "0"
    size = client.get("/_emulator/healthz").json()["services"]
    r = client.post("/_emulator/services", json={"count": 5})
    assert r.status_code == 201 and len(r.json()["service_ids"]) == 5
    assert client.get("/_emulator/healthz").json() == {"ok": True, "services": size + 5}
    assert client.delete("/_emulator/services/svc-fixed-id").status_code == 204
    assert client.get(f"{P}/services/svc-fixed-id").status_code == 404
    assert client.delete("/_emulator/services/svc-fixed-id").status_code == 404
    assert client.post("/_emulator/services", json={"bogus": 1}).status_code == 400
    assert client.post("/_emulator/services", json={"tags": {"a": 1}}).status_code == 400


def test_control_reset_and_requests_counters(client: httpx.Client, anon: httpx.Client) -> None:
    assert client.post("/_emulator/reset", json={"services": 50, "seed": 3}).json() == {"services": 50}
    assert client.get("/_emulator/healthz").json() == {"ok": True, "services": 50}
    assert client.get("/_emulator/requests").json() == {
        "total": 0,
        "by_route": {"list": 0, "show": 0, "legacy": 0, "iam": 0},
        "log": [],
    }
    client.get(f"{P}/services", params={"limit": 1})
    client.get(f"{P}/services/nope")
    client.get(f"{P}/infer-services")
    anon.post("/v3/auth/tokens", json=_iam_body())
    client.get("/_emulator/faults")  # control requests are not counted
    log = client.get("/_emulator/requests").json()
    assert log["total"] == 4 and log["by_route"] == {"list": 1, "show": 1, "legacy": 1, "iam": 1}
    first = log["log"][0]
    assert first["started_s"] <= first["ended_s"] <= log["log"][1]["started_s"], "one after the other"
    assert {k: v for k, v in first.items() if k not in ("started_s", "ended_s")} == {
        "method": "GET",
        "path": f"{P}/services",
        "query": "limit=1",
        "status": 200,
        "user_agent": f"python-httpx/{httpx.__version__}",
    }
    assert log["log"][1]["status"] == 404
    client.delete("/_emulator/requests")
    assert client.get("/_emulator/requests").json()["total"] == 0
    client.post("/_emulator/quirks", json={"sparse": True})
    client.post("/_emulator/faults", json={"latency_ms": 5})
    client.post("/_emulator/reset", json={})
    assert client.get("/_emulator/quirks").json()["sparse"] is False
    assert client.get("/_emulator/faults").json()["latency_ms"] == 0
    assert client.get("/_emulator/healthz").json()["services"] == SETTINGS.services


# -- faults --------------------------------------------------------------------------------------------
def test_fault_latency(client: httpx.Client) -> None:
    assert client.post("/_emulator/faults", json={"latency_ms": 150}).json()["latency_ms"] == 150
    t = time.perf_counter()
    client.get(f"{P}/services", params={"limit": 1})
    assert time.perf_counter() - t >= 0.15
    t = time.perf_counter()
    client.get("/_emulator/healthz")  # never on the control API
    assert time.perf_counter() - t < 0.15


@pytest.mark.parametrize(("status", "body"), [(503, "json"), (502, "html"), (500, "empty"), (404, "json")])
def test_fault_error_status(client: httpx.Client, status: int, body: str) -> None:
    client.post("/_emulator/faults", json={"error_status": status, "error_count": 2, "error_body": body})
    for _ in range(2):
        r = client.get(f"{P}/services", params={"limit": 1})
        assert r.status_code == status
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-request-id"])
        if body == "json":
            assert set(r.json()) == {"error_code", "error_msg"}
        elif body == "html":
            assert r.text == "<html>Bad Gateway</html>"
        else:
            assert r.content == b""
    assert client.get(f"{P}/services", params={"limit": 1}).status_code == 200
    assert client.get("/_emulator/faults").json()["error_count"] == 0


def test_fault_errors_can_start_mid_listing(client: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"error_status": 503, "error_count": 1, "error_after": 2})
    codes = [client.get(f"{P}/services", params={"limit": 1}).status_code for _ in range(4)]
    assert codes == [200, 200, 503, 200]
    assert client.post("/_emulator/faults", json={"error_after": -1}).status_code == 400


def test_fault_error_rate_and_paths(client: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"error_rate": 1.0, "paths": ["/infer-services"]})
    assert client.get(f"{P}/services", params={"limit": 1}).status_code == 200
    r = client.get(f"{P}/infer-services")
    assert r.status_code == 500 and r.json()["is_success"] is False
    client.post("/_emulator/faults", json={"error_rate": 0.5, "paths": None})
    codes = Counter(client.get(f"{P}/services/nope").status_code for _ in range(40))
    assert codes[500] > 5 and codes[404] > 5
    assert client.delete("/_emulator/faults").json()["error_rate"] == 0
    assert client.post("/_emulator/faults", json={"error_rate": 2}).status_code == 400
    assert client.post("/_emulator/faults", json={"no_such_fault": 1}).status_code == 400


def test_fault_rate_limit(client: httpx.Client, anon: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"rate_limit_count": 2, "retry_after": 3})
    for _ in range(2):
        r = client.get(f"{P}/services", params={"limit": 1})
        assert r.status_code == 429 and r.headers["retry-after"] == "3"
        assert r.json()["error_code"] == "APIGW.0308"
        assert r.json()["error_msg"].startswith("The throttling threshold has been reached: policy user over ratelimit")
    assert client.get(f"{P}/services", params={"limit": 1}).status_code == 200
    # IAM only when a path matches /v3/
    client.post("/_emulator/faults", json={"rate_limit_count": 1})
    assert anon.post("/v3/auth/tokens", json=_iam_body()).status_code == 201
    client.post("/_emulator/faults", json={"paths": ["/v3/"]})
    assert anon.post("/v3/auth/tokens", json=_iam_body()).status_code == 429


def test_fault_malformed_body(client: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"malformed_count": 1})
    r = client.get(f"{P}/services", params={"limit": 3})
    assert r.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(r.content)
    assert client.get(f"{P}/services", params={"limit": 3}).json()["count"] == 3


def test_auth_failures_do_not_consume_faults(client: httpx.Client, anon: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"error_status": 503, "error_count": 1})
    assert anon.get(f"{P}/services").status_code == 401
    assert client.get(f"{P}/services", params={"limit": 1}).status_code == 503


def _ids(body: dict[str, Any]) -> list[str]:
    return [s["service_id"] for s in body["services"]]


def test_fault_delete_during_listing_shifts_the_later_pages_back(client: httpx.Client, fresh: None) -> None:
    params = {"sort_by": "publish_at", "order": "asc"}
    before = [s["service_id"] for s in list_all(client, **params)]
    client.post("/_emulator/faults", json={"delete_during_listing": 3})
    list_all(client, **params)  # one page that is the last: nothing deleted, still armed
    assert client.get("/_emulator/faults").json()["delete_during_listing"] == 3
    first = client.get(f"{P}/services", params={**params, "offset": 0, "limit": 100}).json()
    second = client.get(f"{P}/services", params={**params, "offset": 1, "limit": 100}).json()
    assert _ids(first) == before[:100] and first["total_count"] == len(before)
    assert _ids(second) == before[103:203] and second["total_count"] == len(before) - 3
    assert all(client.get(f"{P}/services/{gone}").status_code == 404 for gone in before[:3])
    assert client.get("/_emulator/faults").json()["delete_during_listing"] == 0
    history = client.get("/_emulator/transitions").json()["transitions"]
    assert [(t["service_id"], t["to_status"]) for t in history[-3:]] == [(i, None) for i in before[:3]]
    assert client.post("/_emulator/faults", json={"delete_during_listing": -1}).status_code == 400


def test_fault_hide_fraction_leaves_services_out_of_whole_listings(client: httpx.Client, fresh: None) -> None:
    listed = len(list_all(client))
    assert client.post("/_emulator/faults", json={"hide_fraction": 0.3}).json()["hide_listings"] == 1
    first = client.get(f"{P}/services", params={"offset": 0, "limit": 600}).json()
    rest = client.get(f"{P}/services", params={"offset": 1, "limit": 600}).json()  # pages of 600
    shown = listed - listed * 3 // 10
    assert first["total_count"] == rest["total_count"] == shown  # 30 % hidden, on every page of the listing
    assert len(set(_ids(first)) | set(_ids(rest))) == shown
    assert client.get(f"{P}/services", params={"limit": 1}).json()["total_count"] == listed  # the next listing
    client.post("/_emulator/faults", json={"hide_fraction": 1.0, "hide_listings": 2})
    totals = [client.get(f"{P}/services", params={"limit": 10}).json()["total_count"] for _ in range(3)]
    assert totals == [0, 0, listed]
    assert client.post("/_emulator/faults", json={"hide_fraction": 1.5}).status_code == 400
    assert client.post("/_emulator/faults", json={"hide_listings": -1}).status_code == 400


# -- quirks --------------------------------------------------------------------------------------------
def test_quirk_ignore_sort_by_answers_in_publish_order(client: httpx.Client) -> None:
    newest_published = [s["service_id"] for s in list_all(client, sort_by="publish_at", order="desc")]
    assert [s["service_id"] for s in list_all(client, sort_by="transition_at", order="desc")] != newest_published
    client.post("/_emulator/quirks", json={"ignore_sort_by": True})
    assert [s["service_id"] for s in list_all(client, sort_by="transition_at", order="desc")] == newest_published
    assert [s["service_id"] for s in list_all(client, sort_by="service_name", order="asc")] == newest_published[::-1]


def _first(client: httpx.Client, **params: Any) -> dict[str, Any]:
    return client.get(f"{P}/services", params={"limit": 1, **params}).json()["services"][0]


def test_quirks_on_list_rows(client: httpx.Client) -> None:
    deploying = _first(client, status="deploying")
    defaults = client.get("/_emulator/quirks").json()
    assert defaults.pop("offset_mode") == "page"
    assert defaults.pop("max_limit") is None and defaults.pop("result_window") is None
    assert {"numbers_as_strings", "sparse", "missing_count", "legacy_error_200"} <= set(defaults)
    assert set(defaults.values()) == {False}, "every other quirk is a switch, off by default"
    client.post("/_emulator/quirks", json={"numbers_as_strings": True})
    row = _first(client, status="deploying")
    assert all(isinstance(row[k], str) for k in ("invocation_times", "failed_times", "shared_count", "progress"))
    client.post("/_emulator/quirks", json={"numbers_as_strings": False, "float_numbers": True})
    row = _first(client, status="deploying")
    assert isinstance(row["publish_at"], float) and row["publish_at"] == deploying["publish_at"]
    assert isinstance(row["invocation_times"], float)
    client.post("/_emulator/quirks", json={"float_numbers": False, "publish_at_seconds": True})
    assert _first(client, status="deploying")["publish_at"] == deploying["publish_at"] // 1000
    client.post("/_emulator/quirks", json={"publish_at_seconds": False, "workspace_id_as_number": True})
    assert _first(client)["workspace_id"] == 0
    client.post("/_emulator/quirks", json={"workspace_id_as_number": False, "sample_collection_bool": True})
    assert isinstance(_first(client)["is_opened_sample_collection"], bool)
    client.post("/_emulator/quirks", json={"sample_collection_bool": False, "sparse": True})
    assert set(_first(client, status="deploying")) == EXAMPLE_LIST_FIELDS
    client.post("/_emulator/quirks", json={"sparse": False, "unknown_fields": True, "missing_count": True})
    body = client.get(f"{P}/services", params={"limit": 1}).json()
    assert "count" not in body and body["new_field"] == {"x": 1} and body["services"][0]["new_field"] == {"x": 1}
    client.delete("/_emulator/quirks")
    assert _first(client, status="deploying") == deploying  # row caches were invalidated both ways
    assert client.post("/_emulator/quirks", json={"sparse": "yes"}).status_code == 400
    assert client.post("/_emulator/quirks", json={"offset_mode": "pages"}).status_code == 400
    assert client.post("/_emulator/quirks", json={"nope": True}).status_code == 400


def test_quirks_on_details_and_legacy(client: httpx.Client) -> None:
    sid = _first(client, status="running", infer_type="real-time")["service_id"]
    plain = client.get(f"{P}/services/{sid}").json()
    client.post("/_emulator/quirks", json={"config_as_string": True, "workspace_id_as_number": True})
    d = client.get(f"{P}/services/{sid}").json()
    assert isinstance(d["config"], str) and json.loads(d["config"]) == plain["config"]
    assert d["workspace_id"] == 0
    client.post("/_emulator/quirks", json={"config_as_string": False, "workspace_id_as_number": False})
    client.post("/_emulator/quirks", json={"sparse": True, "unknown_fields": True})
    d = client.get(f"{P}/services/{sid}").json()
    assert "description" not in d and "pool_name" not in d and d["new_field"] == {"x": 1}
    assert d["progress"] == 100 and "transition_at" in d  # as the details example
    assert all(c["new_field"] == {"x": 1} for c in d["config"])
    legacy = client.get(f"{P}/infer-services").json()
    assert legacy["new_field"] == {"x": 1} and legacy["services"][0]["new_field"] == {"x": 1}


# -- churn ---------------------------------------------------------------------------------------------
def test_churn_steps_keep_transition_at(client: httpx.Client) -> None:
    before = int(time.time() * 1000)
    r = client.post("/_emulator/churn", json={"steps": 60})
    transitions = r.json()["transitions"]
    assert len(transitions) == 60
    allowed = {
        ("deploying", "running"), ("deploying", "failed"), ("running", "concerning"), ("concerning", "running"),
        ("running", "stopping"), ("stopping", "stopped"), ("running", "finished"), ("stopped", "deploying"),
        ("failed", "deploying"), ("pending", "deploying"), ("waiting", "deploying"), ("stopped", "deleting"),
        ("failed", "deleting"), ("finished", "deleting"), ("deleting", None), (None, "deploying"),
    }  # fmt: skip
    after = int(time.time() * 1000)
    final: dict[str, dict[str, Any]] = {}
    for t in transitions:
        assert set(t) == {"service_id", "service_name", "from_status", "to_status", "transition_at"}
        assert (t["from_status"], t["to_status"]) in allowed
        assert before <= t["transition_at"] <= after
        final[t["service_id"]] = t
    for sid, t in final.items():
        r = client.get(f"{P}/services/{sid}")
        if t["to_status"] is None:
            assert r.status_code == 404
            continue
        d = r.json()
        assert d["status"] == t["to_status"] and d["transition_at"] == t["transition_at"]
        if d["status"] == "failed":
            assert d["error_msg"]
        elif "error_msg" in d:
            pytest.fail("error_msg must be cleared when a service leaves failed")
        if t["from_status"] == "deploying" and d["status"] == "running":
            assert d["progress"] == 100
    assert client.get("/_emulator/transitions").json()["transitions"][-60:] == transitions


def test_churn_rate_runs_in_background(client: httpx.Client) -> None:
    seen = len(client.get("/_emulator/transitions").json()["transitions"])
    assert client.post("/_emulator/churn", json={"rate": 200}).json()["rate"] == 200
    time.sleep(0.3)
    client.post("/_emulator/churn", json={"rate": 0})
    moved = len(client.get("/_emulator/transitions").json()["transitions"]) - seen
    assert moved > 10


# -- fleet, settings, CLI ------------------------------------------------------------------------------
def _fingerprint(services: int, seed: int) -> list[tuple[Any, ...]]:
    fleet = build_fleet(services, seed, "p", 3, 1_790_000_000_000)
    return [(s.service_id, s.service_name, s.status, s.workspace_id, s.publish_at, s.models) for s in fleet.items]


def test_fleet_is_deterministic() -> None:
    assert _fingerprint(500, 1) == _fingerprint(500, 1)
    assert _fingerprint(500, 1) != _fingerprint(500, 2)
    a = create_app(EmulatorSettings(services=300, seed=9, anchor_ms=1_790_000_000_000)).state.emu.fleet
    b = create_app(EmulatorSettings(services=300, seed=9, anchor_ms=1_790_000_000_000)).state.emu.fleet
    from services_bot.emulator.render import details

    assert [details(s) for s in a.items] == [details(s) for s in b.items]


def test_fleet_generation_and_paging_are_fast() -> None:
    """Budget: 100k services generated in about 2 s, a 1000-row page out of them in well under 20 ms.

    The bounds asserted are looser than the budget so a slow CI machine does not flake."""
    t = time.perf_counter()
    fleet = build_fleet(100_000, 42, "p", 3, None)
    took = time.perf_counter() - t
    assert len(fleet) == 100_000 and len(fleet.by_id) == 100_000
    assert took < 5, f"generating 100k services took {took:.2f}s"
    quirks = Quirks()

    def page(offset: int) -> bytes:
        query = parse_list_query(QueryParams(f"offset={offset}&limit=1000"))
        total, services = run_list_query(fleet, query, PagingRules())
        assert total > 45_000 and len(services) == 1000
        return b",".join([encoded_row(s, quirks) for s in services])

    page(0)  # first use of the filtered order
    cold = min(_timed(page, i) for i in range(1, 4))  # rows encoded for the first time
    warm = min(_timed(page, i) for i in range(1, 4))  # rows from the cache
    assert cold < 0.1 and warm < 0.02, (cold, warm)


def _timed(fn: Any, *args: Any) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t


def test_settings_and_cli_arguments() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ns = parser.parse_args(["--port", "0", "--services", "10", "--offset-mode", "record", "--project-id", "p1"])
    s = settings_from_args(ns)
    assert (s.port, s.services, s.offset_mode, s.project_id, s.seed) == (0, 10, "record", "p1", 42)
    assert "--churn" in parser.format_help() and "--ak" in parser.format_help()
    with pytest.raises(ValueError):
        EmulatorSettings(offset_mode="pages")
    with EmulatorServer(s) as emu:
        assert emu.url.startswith("http://127.0.0.1:") and emu.settings is s
        assert httpx.get(f"{emu.url}/_emulator/healthz").json() == {"ok": True, "services": 10}
        assert httpx.get(f"{emu.url}/_emulator/quirks").json()["offset_mode"] == "record"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{emu.url}/_emulator/healthz")
    busy = EmulatorServer(EmulatorSettings(port=int(emu.url.rsplit(":", 1)[1]), services=1))
    with EmulatorServer(EmulatorSettings(port=busy.settings.port, services=1)), pytest.raises(RuntimeError):
        busy.start()  # the port is taken: a clear error, not a hang
