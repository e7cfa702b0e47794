"""AK/SK signatures match the official Huawei Cloud SDK signer; configuration errors are readable."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.sdk_request import SdkRequest
from huaweicloudsdkcore.signer.signer import Signer
from pydantic import SecretStr
from services_bot.core import signing
from services_bot.core.auth import AkSkSigner
from services_bot.core.config import Settings
from services_bot.core.errors import ConfigError

WHEN = datetime(2026, 11, 23, 9, 30, 0, tzinfo=UTC)
AK, SK = "AKTESTEXAMPLE000", "sk-example-secret"


def official(
    method: str,
    host: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    project_id: str,
    sdk_date: str = WHEN.strftime("%Y%m%dT%H%M%SZ"),
) -> tuple[str, dict[str, str], str]:
    """Sign as huaweicloudsdkcore does for a project-scoped client (``BasicCredentials`` with a project id,
    which adds ``X-Project-Id``); return its canonical request, its headers and the URI it sends."""
    request = SdkRequest(
        method=method,
        schema="https",
        host=host,
        resource_path=path,
        query_params=list(query),
        header_params={**headers, "X-Sdk-Date": sdk_date},
        body=b"",
    )
    signed = BasicCredentials(ak=AK, sk=SK, project_id=project_id).sign_request(request)
    names = sorted(k.lower() for k in signed.header_params if "_" not in k and k.lower() != "authorization")
    canonical = Signer(BasicCredentials(ak=AK, sk=SK))._process_canonical_request(signed, names)
    return canonical, signed.header_params, signed.uri


CASES = [
    ("GET", "/v1/p1/services", [], {}),
    ("GET", "/v1/p1/services", [("status", "failed"), ("limit", "1000"), ("offset", "0")], {}),
    ("GET", "/v1/p1/services", [("service_name", "ocr prod/ü"), ("tags", "team=ocr,env=prod")], {}),
    ("GET", "/v1/p1/services", [("service_name", "a+b & c=d"), ("offset", "0"), ("limit", "2")], {}),
    ("GET", "/v1/p1/services/195c1f2d-136d-40af-a0f3-db5717d2634a", [], {"Content-Type": "application/json"}),
    ("GET", "/v1/p1/infer-services", [("workspace_id", "0")], {}),
]


@pytest.mark.parametrize(("method", "path", "query", "extra"), CASES)
def test_signature_equals_the_official_sdk_signer(method: str, path: str, query: list, extra: dict) -> None:
    host = "modelarts.cn-north-4.myhuaweicloud.com"
    url = signing.wire_url(f"https://{host}{path}", dict(query))
    headers = {"Host": host, **extra}
    ours = signing.sign_headers(method, str(url), headers, AK, SK, project_id="p1", now=WHEN)
    their_canonical, their_headers, their_uri = official(method, host, path, query, headers, "p1")
    assert ours["X-Project-Id"] == their_headers["X-Project-Id"] == "p1"
    signed = sorted({"host", "x-sdk-date", "x-project-id", *(k.lower() for k in extra)})
    merged = {**{k.lower(): v for k, v in headers.items()}, "x-sdk-date": ours["X-Sdk-Date"], "x-project-id": "p1"}
    assert signing.canonical_request(method, str(url), merged, signed) == their_canonical
    assert ours["Authorization"] == their_headers["Authorization"]
    assert ours["X-Sdk-Date"] == "20261123T093000Z"
    assert url.raw_path.decode() == their_uri  # on the wire exactly what the SDK sends


async def test_the_signer_sends_what_the_sdk_signs_and_sends() -> None:
    """``AkSkSigner`` on the request the client builds: the same headers, signature and URI as the SDK."""
    host = "modelarts.cn-north-4.myhuaweicloud.com"
    path, query = "/v1/p1/services", {"service_name": "ocr prod", "offset": "0", "limit": "1000"}
    async with httpx.AsyncClient(headers={"User-Agent": "services-bot/0.1", "Accept": "application/json"}) as http:
        request = http.build_request("GET", signing.wire_url(f"https://{host}{path}", query))
    await AkSkSigner(SecretStr(AK), SecretStr(SK)).apply(request, "p1")
    _, theirs, their_uri = official(
        "GET", host, path, list(query.items()), {"Host": host}, "p1", sdk_date=request.headers["X-Sdk-Date"]
    )
    assert request.headers["X-Project-Id"] == theirs["X-Project-Id"] == "p1"
    assert request.headers["Authorization"] == theirs["Authorization"]
    assert request.url.raw_path.decode() == their_uri == "/v1/p1/services?limit=1000&offset=0&service_name=ocr%20prod"


def test_a_plus_in_the_url_is_signed_as_a_plus() -> None:
    """The API gateway reads a '+' in the query as a plus, so it is signed as one (%2B), never as a space."""
    url = "https://h/v1/p/services?service_name=ocr+prod&tags=a%20b"
    canonical = signing.canonical_request("GET", url, {"host": "h"}, ["host"])
    assert canonical.split("\n")[2] == "service_name=ocr%2Bprod&tags=a%20b"


def test_signature_changes_when_the_request_changes() -> None:
    url = "https://h/v1/p/services?status=failed"
    a = signing.sign_headers("GET", url, {"Host": "h"}, AK, SK, now=WHEN)["Authorization"]
    b = signing.sign_headers("GET", url.replace("failed", "running"), {"Host": "h"}, AK, SK, now=WHEN)["Authorization"]
    assert a != b and SK not in a


def clean_settings(**fields: object) -> Settings:
    base: dict[str, object] = {
        "modelarts_auth_token": None,
        "huaweicloud_sdk_ak": None,
        "huaweicloud_sdk_sk": None,
        "huaweicloud_iam_username": None,
        "huaweicloud_iam_password": None,
        "huaweicloud_iam_domain": None,
        "modelarts_region": None,
        "modelarts_endpoint": None,
        "modelarts_project_id": None,
        "services_bot_config": None,
    }
    return Settings(_env_file=None, **{**base, **fields})  # type: ignore[arg-type, call-arg]


def test_region_gives_the_documented_endpoint_and_override_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELARTS_REGION", "cn-north-4")
    monkeypatch.setenv("HUAWEICLOUD_SDK_PROJECT_ID", "proj-from-sdk-name")
    monkeypatch.setenv("MODELARTS_AUTH_TOKEN", "t")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    [target] = settings.targets()
    assert target.endpoint == "https://modelarts.cn-north-4.myhuaweicloud.com"
    assert target.project_id == "proj-from-sdk-name"
    assert settings.iam_endpoint(target) == "https://iam.cn-north-4.myhuaweicloud.com"
    monkeypatch.setenv("MODELARTS_ENDPOINT", "http://127.0.0.1:9/")
    assert Settings(_env_file=None).targets()[0].endpoint == "http://127.0.0.1:9"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({}, "No ModelArts credentials"),
        ({"modelarts_auth_token": "t", "huaweicloud_sdk_ak": "a", "huaweicloud_sdk_sk": "s"}, "Several credentials"),
        ({"huaweicloud_sdk_ak": "a"}, "Only one of HUAWEICLOUD_SDK_AK"),
        ({"huaweicloud_iam_username": "u", "huaweicloud_iam_password": "hunter2-x"}, "HUAWEICLOUD_IAM_DOMAIN not set"),
    ],
)
def test_credential_mistakes_are_named(fields: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        clean_settings(**fields).auth_mode()
    assert fragment in caught.value.user_text()
    assert "hunter2-x" not in caught.value.user_text()


def test_missing_project_and_endpoint_are_named() -> None:
    with pytest.raises(ConfigError, match="MODELARTS_PROJECT_ID"):
        clean_settings(modelarts_auth_token="t").targets()
    with pytest.raises(ConfigError) as caught:
        clean_settings(modelarts_auth_token="t", modelarts_project_id="p").targets()
    assert "MODELARTS_REGION" in caught.value.user_text()


def test_targets_file_lists_several_projects_and_regions(tmp_path: Path) -> None:
    path = tmp_path / "targets.toml"
    path.write_text(
        '[[targets]]\nname = "prod-cn"\nregion = "cn-north-4"\nproject_id = "p1"\nworkspace_ids = ["0", "ws2"]\n'
        '[[targets]]\nname = "staging"\nendpoint = "http://127.0.0.1:8090"\nproject_id = "p2"\n'
    )
    targets = clean_settings(services_bot_config=path).targets()
    assert [(t.name, t.endpoint, t.project_id, t.workspace_ids) for t in targets] == [
        ("prod-cn", "https://modelarts.cn-north-4.myhuaweicloud.com", "p1", ["0", "ws2"]),
        ("staging", "http://127.0.0.1:8090", "p2", []),
    ]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("not toml [", "not valid TOML"),
        ("x = 1", "no [[targets]]"),
        ('[[targets]]\nname = "a"\nregion = "r"\n', "has no project_id"),
        ('[[targets]]\nname = "a"\nproject_id = "p"\n', "No ModelArts endpoint in the target 'a'"),
        ('[[targets]]\nname = "a"\nproject_id = "p"\nendpoint = "ftp://x"\n', "must start with http"),
        (
            '[[targets]]\nname="a"\nproject_id="p"\nregion="r"\n[[targets]]\nname="a"\nproject_id="q"\nregion="r"\n',
            "unique",
        ),
    ],
)
def test_bad_targets_file_is_explained(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "t.toml"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        clean_settings(services_bot_config=path).targets()
    assert fragment in caught.value.user_text()


def test_missing_targets_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        clean_settings(services_bot_config=tmp_path / "nope.toml").targets()
