"""The emulator's v2 API against the v2 pages: shapes, paging rules, sort, filters, generations, controls.

Everything goes over real loopback HTTP to an ``EmulatorServer`` with plain httpx (never ``core/``: the
emulator and the client are two independent readings of the spec). AK/SK signing on v2 paths is checked with
huaweicloudsdkcore's own signer. The shapes are compared with copies of the spec's constructed v2 fixtures
(tests/fixtures/README.md).
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from services_bot.emulator import EmulatorServer, EmulatorSettings

FIXTURES = Path(__file__).resolve().parent / "fixtures"
SETTINGS = EmulatorSettings(port=0, services=2000, seed=11, generations="mixed", workspaces=0)
V1 = f"/v1/{SETTINGS.project_id}"
V2 = f"/v2/{SETTINGS.project_id}"
V2_LIST_STATUSES = {
    "DEPLOYING", "FAILED", "STOPPED", "RUNNING", "DELETING", "STOPPING", "CONCERNING", "UPGRADING", "ERROR",
    "INTERRUPTING", "INIT",
}  # fmt: skip


def fixture(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def emu() -> Iterator[EmulatorServer]:
    with EmulatorServer(SETTINGS) as server:
        yield server


@pytest.fixture(scope="module")
def client(emu: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, headers={"X-Auth-Token": emu.settings.token}, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def anon(emu: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=emu.url, timeout=30) as c:
        yield c


@pytest.fixture(autouse=True)
def _fresh(client: httpx.Client) -> Iterator[None]:
    """Every test starts from the same mixed fleet, with no faults and no quirks."""
    assert client.post("/_emulator/reset", json={}).status_code == 200
    yield
    client.delete("/_emulator/faults")
    client.delete("/_emulator/quirks")


def page(client: httpx.Client, **params: Any) -> dict[str, Any]:
    r = client.get(f"{V2}/services", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def list_v2(client: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every matching v2 row, paging by the documented rules (limit 500, offset = n * limit)."""
    rows: list[dict[str, Any]] = []
    offset = 0
    while True:
        body = page(client, limit=500, offset=offset, **params)
        rows += body["data"]
        if body["current"] + 1 >= body["pages"]:
            assert len(rows) == body["total"]
            return rows
        offset += 500


def list_v1(client: httpx.Client) -> list[dict[str, Any]]:
    r = client.get(f"{V1}/services", params={"limit": 100_000})
    assert r.status_code == 200, r.text
    return r.json()["services"]


def add(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    r = client.post("/_emulator/services", json=fields)
    assert r.status_code == 201, r.text
    return r.json()


def set_status(client: httpx.Client, service_id: str, status: str, **extra: Any) -> dict[str, Any]:
    r = client.post(f"/_emulator/services/{service_id}/status", json={"status": status, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def bad_request(client: httpx.Client, **params: Any) -> str:
    r = client.get(f"{V2}/services", params=params)
    assert r.status_code == 400, (params, r.text)
    body = r.json()
    assert body["error_code"] == "ModelArts.0101"
    return str(body["error_msg"])


def _json_types(obj: dict[str, Any]) -> dict[str, type]:
    return {k: type(v) for k, v in obj.items()}


# -- shapes --------------------------------------------------------------------------------------------
def test_list_rows_and_envelope_have_the_fixtures_fields_and_types(client: httpx.Client) -> None:
    expected = fixture("v2-list-services.json")
    body = page(client, limit=4)
    assert list(body) == list(expected)  # data, current, size, pages, total
    assert _json_types({k: v for k, v in body.items() if k != "data"}) == _json_types(
        {k: v for k, v in expected.items() if k != "data"}
    )
    assert len(body["data"]) == 4
    for row in body["data"]:
        assert list(row) == list(expected["data"][0])
        assert _json_types(row) == _json_types(expected["data"][0])
        assert row["status"] in V2_LIST_STATUSES and row["status"].isupper()
        assert row["type"] in ("REAL_TIME", "ASYNC_REAL_TIME") and row["deploy_type"] in ("SINGLE", "MULTI")
        assert 10**12 <= row["create_at"] <= row["update_at"] < 10**13
        assert "failure_reason" not in row and "predict_url" not in row  # details only


def test_details_have_the_fixtures_fields(client: httpx.Client) -> None:
    failed = fixture("v2-show-service-failed.json")
    row = add(client, generation="v2", status="FAILED", error_msg="Deployment did not become ready in 15 minutes")
    r = client.get(f"{V2}/services/{row['id']}")
    assert r.status_code == 200, r.text
    d = r.json()
    assert set(d) == set(failed)
    assert d["status"] == "FAILED" and d["failure_reason"] == "Deployment did not become ready in 15 minutes"
    assert set(d["version"]) == set(failed["version"])
    group_fields = set(failed["version"]["instance_groups"][0])
    for group in d["version"]["instance_groups"]:
        assert set(group) <= group_fields
        assert group["status"] == "FAILED" and group["running_count"] == 0 and group["count"] >= 1
        assert group["pool_id"].startswith("pool-") and group["unit_configs"][0]["flavor"]
    assert d["predict_url"] == [{"type": "PUBLIC", "urls": []}] and d["version"]["predict_url"] == ""
    assert isinstance(d["create_at"], int)  # numbers by default; the numbers_as_strings quirk makes strings

    client.post("/_emulator/quirks", json={"numbers_as_strings": True})
    d = client.get(f"{V2}/services/{row['id']}").json()
    assert _json_types({k: d[k] for k in ("create_at", "update_at")}) == {"create_at": str, "update_at": str}
    assert isinstance(failed["create_at"], str) and d["create_at"].isdigit() and len(d["create_at"]) == 13
    listed = page(client, id=row["id"])["data"][0]
    assert isinstance(listed["create_at"], str) and isinstance(listed["version_count"], str)

    client.post("/_emulator/quirks", json={"numbers_as_strings": False, "unknown_fields": True})
    body = page(client, id=row["id"])
    assert body["new_field"] == body["data"][0]["new_field"] == {"x": 1} and isinstance(body["total"], int)
    assert client.get(f"{V2}/services/{row['id']}").json()["new_field"] == {"x": 1}
    client.post("/_emulator/quirks", json={"request_id_in_body": True, "error_message_key": True})
    error = client.get(f"{V2}/services", params={"limit": 0}).json()
    assert error["request_id"] and "limit" in error["error_message"]


def test_concerning_details_show_the_deployment_short_of_instances(client: httpx.Client) -> None:
    concerning = fixture("v2-show-service-concerning.json")
    row = add(client, generation="v2", status="CONCERNING")
    d = client.get(f"{V2}/services/{row['id']}").json()
    assert d["status"] == concerning["status"] == "CONCERNING"
    first = d["version"]["instance_groups"][0]
    assert first["status"] == "CONCERNING" and first["running_count"] < first["count"]
    assert d["predict_url"][0]["urls"] and d["version"]["predict_url"].startswith("https://")
    assert "failure_reason" not in d


# -- paging rules --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"limit": 10**20}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": 10, "offset": 5}, "multiple of limit"),
        ({"offset": 3}, "multiple of limit (10)"),  # the default limit is 10
        ({"offset": -10}, "offset"),
        ({"sort_dir": "desc"}, "ASC, DESC"),
        ({"sort_key": "publish_at"}, "create_at, update_at"),
        ({"sort_key": "create_at,"}, "sort_key"),
        ({"status": "running"}, "RUNNING"),
        ({"type": "real-time"}, "REAL_TIME"),
        ({"auth_type": "token"}, "API_KEY"),
        ({"tags": "|team"}, "key1|value1"),
        ({"tags": "team|ocr,"}, "trailing"),
        ({"tags": "team||ocr"}, "doubled"),
        ({"name": "x" * 129}, "at most 128"),
    ],
)
def test_broken_paging_and_filter_rules_answer_400_naming_the_problem(
    client: httpx.Client, params: dict[str, Any], named: str
) -> None:
    assert named in bad_request(client, **params)


def test_pages_follow_the_documented_envelope(client: httpx.Client) -> None:
    first = page(client)
    total = first["total"]
    assert total > 500  # the mixed fleet: about 55% of 2000 services are on v2
    assert (first["current"], first["size"], first["pages"], len(first["data"])) == (0, 10, math.ceil(total / 10), 10)
    seen: list[str] = []
    for n in range(math.ceil(total / 7)):
        body = page(client, limit=7, offset=n * 7)
        assert body["current"] == n and body["size"] == 7 and body["pages"] == math.ceil(total / 7)
        assert body["total"] == total
        seen += [row["id"] for row in body["data"]]
    assert len(seen) == len(set(seen)) == total  # every service exactly once
    past = page(client, limit=7, offset=7 * math.ceil(total / 7))
    assert past["data"] == [] and past["total"] == total
    assert len(page(client, limit=500)["data"]) == 500


def test_sorting_by_update_or_create_time_either_way(client: httpx.Client) -> None:
    default = [r["update_at"] for r in list_v2(client)]
    assert default == sorted(default, reverse=True)  # update_at DESC unless told otherwise
    asc = list_v2(client, sort_key="create_at", sort_dir="ASC")
    assert [r["create_at"] for r in asc] == sorted(r["create_at"] for r in asc)
    desc = list_v2(client, sort_key="create_at", sort_dir="DESC")
    assert [r["id"] for r in desc] == [r["id"] for r in asc][::-1]  # ties broken the same way both ways
    both = list_v2(client, sort_key="create_at,update_at", sort_dir="ASC")
    keys = [(r["create_at"], r["update_at"]) for r in both]
    assert keys == sorted(keys)


def test_filters_select_what_they_name(client: httpx.Client) -> None:
    rows = list_v2(client)
    by_status = Counter(r["status"] for r in rows)
    assert {"RUNNING", "STOPPED", "FAILED"} <= set(by_status)
    for status, n in by_status.items():
        assert len(list_v2(client, status=status)) == n
    for field in ("type", "auth_type", "user_name"):
        value = rows[0][field]
        got = list_v2(client, **{field: value})
        assert got and len(got) == sum(1 for r in rows if r[field] == value)
    named = rows[3]["name"]
    assert rows[3]["id"] in {r["id"] for r in list_v2(client, name=named[2:-2].upper())}  # a fuzzy match
    described = next(r for r in rows if r["description"])
    fuzzy = list_v2(client, description=described["description"][3:12].lower())
    assert described["id"] in {r["id"] for r in fuzzy}
    assert [r["id"] for r in list_v2(client, id=rows[5]["id"])] == [rows[5]["id"]]
    team = rows[0]["tags"][0]
    tagged = list_v2(client, tags=f"{team['key']}|{team['value']}")
    assert tagged and all(team in r["tags"] for r in tagged)
    assert len(list_v2(client, tags=team["key"])) == sum(
        1 for r in rows if any(t["key"] == team["key"] for t in r["tags"])
    )

    detail = client.get(f"{V2}/services/{rows[0]['id']}").json()
    group = detail["version"]["instance_groups"][0]
    in_pool = list_v2(client, pool_id=group["pool_id"])
    assert rows[0]["id"] in {r["id"] for r in in_pool} and len(in_pool) < len(rows)
    asset = group["unit_configs"][0]["models"][0]["asset_id"]
    assert rows[0]["id"] in {r["id"] for r in list_v2(client, asset_id=asset)}
    assert list_v2(client, workspace_id="no-such-workspace") == []


# -- generations ---------------------------------------------------------------------------------------
def test_a_mixed_fleet_holds_v1_only_v2_only_and_both(client: httpx.Client) -> None:
    v1 = {r["service_id"]: r for r in list_v1(client)}
    v2 = {r["id"]: r for r in list_v2(client)}
    both = v1.keys() & v2.keys()
    n = SETTINGS.services
    assert 0.35 * n < len(v1.keys() - both) < 0.55 * n
    assert 0.35 * n < len(v2.keys() - both) < 0.55 * n
    assert 0.05 * n < len(both) < 0.15 * n
    for sid in list(both)[:50]:
        assert v1[sid]["service_name"] == v2[sid]["name"]
        assert v1[sid]["status"].islower() and v2[sid]["status"].isupper()
        assert client.get(f"/_emulator/services/{sid}").json()["generation"] == "both"
    v1_only = next(iter(v1.keys() - both))
    v2_only = next(iter(v2.keys() - both))
    assert client.get(f"/_emulator/services/{v1_only}").json()["generation"] == "v1"
    assert client.get(f"/_emulator/services/{v2_only}").json()["generation"] == "v2"
    for path in (f"{V2}/services/{v1_only}", f"{V1}/services/{v2_only}"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error_code"] == "ModelArts.3502", path
    legacy = client.get(f"{V1}/infer-services").json()["services"]
    assert v2_only not in {r["service_id"] for r in legacy}


def test_the_same_seed_gives_the_same_mixed_fleet(client: httpx.Client) -> None:
    first = [(r["id"], r["status"]) for r in list_v2(client)]
    client.post("/_emulator/reset", json={"seed": 12})
    assert [(r["id"], r["status"]) for r in list_v2(client)] != first
    client.post("/_emulator/reset", json={})
    assert [(r["id"], r["status"]) for r in list_v2(client)] == first


def test_a_v1_only_fleet_answers_an_empty_v2_page(client: httpx.Client) -> None:
    client.post("/_emulator/reset", json={"generations": "v1"})
    assert page(client) == {"data": [], "current": 0, "size": 10, "pages": 0, "total": 0}
    sid = list_v1(client)[0]["service_id"]
    r = client.get(f"{V2}/services/{sid}")
    assert r.status_code == 404 and sid in r.json()["error_msg"]
    client.post("/_emulator/reset", json={"generations": "v2"})
    assert list_v1(client) == [] and page(client)["total"] == SETTINGS.services
    bad = client.post("/_emulator/reset", json={"generations": "v3"})
    assert bad.status_code == 400 and "v1, v2, mixed" in bad.json()["error"]


# -- control API ---------------------------------------------------------------------------------------
def test_control_creates_services_of_each_generation(client: httpx.Client) -> None:
    v2 = add(client, generation="v2", service_name="embed-v2-only")
    assert v2["generation"] == "v2" and v2["status"] == "RUNNING" and v2["name"] == "embed-v2-only"
    assert v2["id"] in {r["id"] for r in list_v2(client, name="embed-v2-only")}
    assert v2["id"] not in {r["service_id"] for r in list_v1(client)}
    both = add(client, generation="both", status="failed", error_msg="OOMKilled")
    assert both["generation"] == "both" and both["status"] == "failed" and both["error_msg"] == "OOMKilled"
    assert both["v2"]["status"] == "FAILED" and both["v2"]["failure_reason"] == "OOMKilled"
    v1 = add(client)
    assert "generation" not in v1 and client.get(f"/_emulator/services/{v1['service_id']}").json()["generation"] == "v1"
    ids = client.post("/_emulator/services", json={"count": 5, "generation": "v2"}).json()["service_ids"]
    assert set(ids) <= {r["id"] for r in list_v2(client)}
    r = client.post("/_emulator/services", json={"generation": "v2", "infer_type": "batch"})
    assert r.status_code == 400 and "no batch" in r.json()["error"]
    assert client.post("/_emulator/services", json={"generation": "v3"}).status_code == 400


def test_control_statuses_are_read_in_the_services_own_vocabulary(client: httpx.Client) -> None:
    v2 = add(client, generation="v2")["id"]
    assert set_status(client, v2, "failed", error_msg="Image pull failed")["status"] == "FAILED"
    d = client.get(f"{V2}/services/{v2}").json()
    assert d["status"] == "FAILED" and d["failure_reason"] == "Image pull failed"
    assert set_status(client, v2, "pending")["status"] == "INIT"
    assert "failure_reason" not in client.get(f"{V2}/services/{v2}").json()  # cleared on leaving FAILED
    for given, shown in (("Upgrading", "UPGRADING"), ("interrupting", "INTERRUPTING"), ("waiting", "DEPLOYING")):
        assert set_status(client, v2, given)["status"] == shown
    assert set_status(client, v2, "ERROR")["failure_reason"]  # a generated cause when none is given

    both = add(client, generation="both")["service_id"]
    for given, on_v1, on_v2 in (
        ("ERROR", "failed", "ERROR"),
        ("UPGRADING", "deploying", "UPGRADING"),
        ("INIT", "pending", "INIT"),
        ("stopped", "stopped", "STOPPED"),
    ):
        view = set_status(client, both, given, error_msg="cause" if given == "ERROR" else None)
        assert (view["status"], view["v2"]["status"]) == (on_v1, on_v2), given
        assert client.get(f"{V1}/services/{both}").json()["status"] == on_v1
        assert client.get(f"{V2}/services/{both}").json()["status"] == on_v2

    v1 = add(client)["service_id"]
    assert set_status(client, v1, "FAILED")["status"] == "failed"
    assert set_status(client, v1, "upgrading")["status"] == "upgrading"  # v1 keeps an unknown status verbatim

    changes = [{"service_id": v2, "status": "running"}, {"service_id": both, "status": "CONCERNING"}]
    r = client.post("/_emulator/statuses", json={"changes": changes})
    assert r.json() == {"changed": 2}
    assert page(client, id=v2)["data"][0]["status"] == "RUNNING"
    assert page(client, id=both)["data"][0]["status"] == "CONCERNING"
    history = client.get("/_emulator/transitions").json()["transitions"]
    last = {t["service_id"]: t for t in history}
    assert last[v2]["generation"] == "v2" and last[v2]["to_status"] == "RUNNING"
    assert last[both]["generation"] == "both" and last[both]["to_status"] == "CONCERNING"
    assert "generation" not in last[v1]  # a v1 record keeps its original shape


def test_update_at_moves_on_every_change_and_leads_the_default_order(client: httpx.Client) -> None:
    rows = list_v2(client)
    quiet = rows[-1]
    before = time.time() * 1000
    set_status(client, quiet["id"], "UPGRADING" if quiet["status"] != "UPGRADING" else "RUNNING")
    top = page(client, limit=1)["data"][0]
    assert top["id"] == quiet["id"] and top["update_at"] >= before - 5
    assert top["create_at"] == quiet["create_at"]  # the creation time never moves


def test_the_update_order_stays_exact_as_services_change_between_polls(client: httpx.Client) -> None:
    """The cached update_at order is mended in place on each change: it must equal a fresh sort every time."""
    rows = list_v2(client, sort_key="create_at")
    for i, row in enumerate(rows[:: len(rows) // 12]):
        set_status(client, row["id"], ("STOPPED", "RUNNING", "ERROR")[i % 3])
        listed = list_v2(client)
        keys = [(r["update_at"], r["id"]) for r in listed]
        assert keys == sorted(keys, reverse=True)
        assert (
            listed[0]["id"] == row["id"] or listed[0]["update_at"] == page(client, id=row["id"])["data"][0]["update_at"]
        )


# -- the 404 switch ------------------------------------------------------------------------------------
def test_a_missing_generation_answers_the_gateways_404(client: httpx.Client, anon: httpx.Client) -> None:
    sid = page(client)["data"][0]["id"]
    client.post("/_emulator/quirks", json={"missing_generation": "v2"})
    for path in (f"{V2}/services", f"{V2}/services/{sid}"):
        for who in (client, anon):  # before authentication, as a gateway routes before it checks
            r = who.get(path)
            assert r.status_code == 404, r.text
            assert r.json() == {
                "error_code": "APIGW.0101",
                "error_msg": "The API does not exist or has not been published in the environment.",
            }
    assert client.get(f"{V1}/services", params={"limit": 1}).status_code == 200
    client.post("/_emulator/quirks", json={"missing_generation": "v1"})
    for path in (f"{V1}/services", f"{V1}/services/{sid}", f"{V1}/infer-services"):
        assert client.get(path).status_code == 404
    assert page(client)["total"] > 0
    client.post("/_emulator/quirks", json={"missing_generation": None})
    assert client.get(f"{V1}/services", params={"limit": 1}).status_code == 200
    bad = client.post("/_emulator/quirks", json={"missing_generation": "v3"})
    assert bad.status_code == 400 and "missing_generation" in bad.json()["error"]
    counts = client.get("/_emulator/requests").json()["by_route"]
    assert counts["list_v2"] >= 2 and counts["show_v2"] >= 2


# -- gateway: auth and faults on v2 --------------------------------------------------------------------
def _signed(emu: EmulatorServer, query: list[tuple[str, Any]], path: str = f"{V2}/services") -> SdkRequest:
    """Sign like the official SDK does: build its SdkRequest and let its credentials sign it."""
    req = SdkRequest(
        method="GET",
        schema="http",
        host=emu.url.split("://", 1)[1],
        resource_path=path,
        query_params=query,
        header_params={"Content-Type": "application/json"},
        body="",
    )
    return BasicCredentials(emu.settings.ak, emu.settings.sk, emu.settings.project_id).sign_request(req)


def test_aksk_signing_works_on_v2_paths(emu: EmulatorServer, anon: httpx.Client, client: httpx.Client) -> None:
    req = _signed(emu, [("limit", 5), ("sort_dir", "ASC"), ("tags", "team|llm")])
    r = anon.get(req.url, headers=req.header_params)
    assert r.status_code == 200, r.text
    assert all({"key": "team", "value": "llm"} in row["tags"] for row in r.json()["data"])
    sid = page(client)["data"][0]["id"]
    req = _signed(emu, [], path=f"{V2}/services/{sid}")
    assert anon.get(req.url, headers=req.header_params).json()["id"] == sid
    req = _signed(emu, [("limit", 5)])
    r = anon.get(req.url.replace("limit=5", "limit=6"), headers=req.header_params)
    assert r.status_code == 401 and r.json()["error_code"] == "APIGW.0301"
    r = anon.get(f"{V2}/services")
    assert r.status_code == 401 and "missing X-Auth-Token" in r.json()["error_msg"]
    other = client.get("/v2/another-project/services")
    assert other.status_code == 403 and other.json()["error_code"] == "ModelArts.0106"


def test_gateway_faults_apply_to_v2(client: httpx.Client) -> None:
    client.post("/_emulator/faults", json={"rate_limit_count": 1, "retry_after": 3})
    r = client.get(f"{V2}/services")
    assert r.status_code == 429 and r.headers["retry-after"] == "3"
    client.post("/_emulator/faults", json={"error_status": 503})
    assert client.get(f"{V2}/services/anything").status_code == 503
    assert client.get(f"{V2}/services").status_code == 200
    client.post("/_emulator/faults", json={"malformed_count": 1})
    with pytest.raises(json.JSONDecodeError):
        json.loads(client.get(f"{V2}/services").content)
    client.post("/_emulator/faults", json={"paths": ["/v1/"], "error_status": 500, "error_count": 5})
    assert client.get(f"{V2}/services").status_code == 200  # the fault is aimed at v1 paths only
    assert client.get(f"{V1}/services").status_code == 500


# -- faults that break v2's own paging rules ------------------------------------------------------------
def _walk(client: httpx.Client, limit: int) -> tuple[list[str], list[dict[str, Any]]]:
    """Page as a careful client does (until ``current + 1 >= pages``), keeping every envelope."""
    ids: list[str] = []
    envelopes: list[dict[str, Any]] = []
    n = 0
    while True:
        body = page(client, limit=limit, offset=n * limit)
        envelopes.append({k: v for k, v in body.items() if k != "data"} | {"rows": len(body["data"])})
        ids += [r["id"] for r in body["data"]]
        if body["current"] + 1 >= body["pages"] or n > 1000:
            return ids, envelopes
        n += 1


def test_fault_v2_short_page_serves_short_pages_before_the_last(client: httpx.Client) -> None:
    honest, _ = _walk(client, 100)
    client.post("/_emulator/faults", json={"v2_short_page": True})
    ids, envelopes = _walk(client, 100)
    assert all(e["size"] == 100 and e["total"] == len(honest) for e in envelopes)
    assert all(e["rows"] == 99 for e in envelopes[:-1])  # short while total says more
    assert len(ids) == len(honest) - (len(envelopes) - 1) and set(ids) < set(honest)
    client.post("/_emulator/faults", json={"v2_short_page": False})
    assert _walk(client, 100)[0] == honest
    assert client.post("/_emulator/faults", json={"v2_short_page": 1}).status_code == 400


def test_fault_v2_pages_overflow_understates_pages_yet_serves_beyond(client: httpx.Client) -> None:
    honest, _ = _walk(client, 100)
    client.post("/_emulator/faults", json={"v2_pages_overflow": True})
    ids, envelopes = _walk(client, 100)
    pages = envelopes[0]["pages"]
    assert pages == math.ceil(len(honest) / 100) - 1  # disagrees with total
    assert len(ids) < len(honest)  # a client trusting pages stops a page early
    beyond = page(client, limit=100, offset=pages * 100)
    assert beyond["current"] == pages and beyond["data"]  # the page at index `pages` still answers rows
    assert ids + [r["id"] for r in beyond["data"]] == honest


def test_listing_faults_apply_to_v2(client: httpx.Client) -> None:
    honest = [r["id"] for r in list_v2(client)]
    client.post("/_emulator/faults", json={"hide_fraction": 0.5})
    hidden = list_v2(client)
    assert abs(len(hidden) - len(honest) / 2) <= 1 and {r["id"] for r in hidden} < set(honest)
    assert len(list_v2(client)) == len(honest)  # one listing only
    client.post("/_emulator/faults", json={"delete_during_listing": 3})
    first = page(client, limit=50)
    second = page(client, limit=50, offset=50)
    assert second["total"] == first["total"] - 3
    assert second["data"][0]["id"] == honest[53]  # the later rows shifted back by the three deleted


# -- churn ---------------------------------------------------------------------------------------------
def test_churn_moves_v2_services_through_v2_states(client: httpx.Client) -> None:
    steps = client.post("/_emulator/churn", json={"steps": 3000}).json()["transitions"]
    v2_moves = [t for t in steps if t.get("generation") in ("v2", "both") and t["from_status"] and t["to_status"]]
    assert len(v2_moves) > 500
    assert all(t["from_status"].isupper() and t["to_status"].isupper() for t in v2_moves)
    reached = {t["to_status"] for t in v2_moves}
    assert {"ERROR", "UPGRADING", "INTERRUPTING", "INIT", "FAILED", "RUNNING", "STOPPED"} <= reached
    v1_moves = [t for t in steps if "generation" not in t and t["to_status"]]
    assert v1_moves and all(t["to_status"].islower() for t in v1_moves)

    rows = {r["id"]: r for r in list_v2(client)}
    last: dict[str, dict[str, Any]] = {t["service_id"]: t for t in steps if t.get("generation") in ("v2", "both")}
    checked = Counter()
    for sid, t in last.items():
        if sid not in rows or t["to_status"] is None:
            continue
        assert rows[sid]["status"] == t["to_status"]
        assert rows[sid]["update_at"] == t["transition_at"]  # update_at moved with the change
        if t["to_status"] in ("FAILED", "ERROR", "RUNNING") and checked[t["to_status"]] < 5:
            checked[t["to_status"]] += 1
            d = client.get(f"{V2}/services/{sid}").json()
            assert bool(d.get("failure_reason")) == (t["to_status"] != "RUNNING"), d.get("failure_reason")
    assert checked["RUNNING"] and (checked["FAILED"] or checked["ERROR"])

    newest = page(client, limit=1)["data"][0]  # what a watcher polling update_at DESC sees first
    assert newest["update_at"] == max(t["transition_at"] for t in last.values() if t["to_status"])


# -- settings, CLI and speed ---------------------------------------------------------------------------
def test_generations_setting_and_cli_flag() -> None:
    import argparse

    from services_bot.emulator import add_arguments, settings_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert settings_from_args(parser.parse_args(["--generations", "mixed"])).generations == "mixed"
    assert settings_from_args(parser.parse_args([])).generations == "v1"
    assert "--generations" in parser.format_help()
    with pytest.raises(SystemExit):
        parser.parse_args(["--generations", "v3"])
    with pytest.raises(ValueError, match="generations"):
        EmulatorSettings(generations="both")


@pytest.mark.parametrize("size", [10_000, 100_000])
def test_v2_listing_is_as_cheap_as_v1(size: int) -> None:
    """A 500-row v2 page costs what a v1 page of the same length does: a join of cached encoded rows."""
    from services_bot.emulator.fleet import build_fleet
    from services_bot.emulator.query import PagingRules, parse_list_query, run_list_query
    from services_bot.emulator.query_v2 import parse_v2_query, run_v2_query
    from services_bot.emulator.quirks import Quirks
    from services_bot.emulator.render import encoded_row
    from services_bot.emulator.render_v2 import encoded_row as encoded_v2_row
    from starlette.datastructures import QueryParams

    fleet = build_fleet(size, 5, "p", 0, None, "mixed")
    quirks = Quirks()

    def v2_page(n: int) -> bytes:
        result = run_v2_query(fleet, parse_v2_query(QueryParams(f"limit=500&offset={n * 500}")))
        assert len(result.services) == 500
        return b",".join([encoded_v2_row(s, quirks) for s in result.services])

    def v1_page(n: int) -> bytes:
        _, services = run_list_query(fleet, parse_list_query(QueryParams(f"limit=500&offset={n}")), PagingRules())
        assert len(services) == 500
        return b",".join([encoded_row(s, quirks) for s in services])

    for fn in (v2_page, v1_page):
        fn(0)  # the first use of each filtered order
    cold_v2 = min(_timed(v2_page, n) for n in range(1, 4))
    cold_v1 = min(_timed(v1_page, n) for n in range(1, 4))
    warm_v2 = min(_timed(v2_page, n) for n in range(1, 4))
    warm_v1 = min(_timed(v1_page, n) for n in range(1, 4))
    assert warm_v2 < 0.02 and cold_v2 < 0.1, (cold_v2, warm_v2)
    assert warm_v2 < 3 * warm_v1 + 0.002 and cold_v2 < 3 * cold_v1 + 0.01, (cold_v2, cold_v1, warm_v2, warm_v1)


def _timed(fn: Any, *args: Any) -> float:
    t = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t
