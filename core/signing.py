"""AK/SK request signing, SDK-HMAC-SHA256, as Huawei Cloud's API gateway verifies it.

Pure functions over method, URL, headers and body, so the test suite can compare the canonical request
and the signature with the official ``huaweicloudsdkcore`` signer for the same inputs.

The gateway reads the query it receives by splitting on ``&`` and ``=`` and percent-decoding (a ``+`` stays
a plus), so a request must go on the wire with exactly the query the signature covers: ``wire_url`` builds
every request URL that way, whatever the credentials, as the SDK does.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote, unquote, urlsplit

import httpx

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()
_SIGNED = {"host", "x-sdk-date", "content-type", "x-security-token", "x-project-id"}


def _encode(text: str) -> str:
    return quote(text, safe="~")


def canonical_uri(path: str) -> str:
    """Each segment percent-encoded (after undoing any encoding), always ending in '/'."""
    encoded = "/".join(_encode(segment) for segment in unquote(path).split("/"))
    return encoded if encoded.endswith("/") else encoded + "/"


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    """Pairs sorted by name then value, both percent-encoded."""
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(pairs))


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """The query as the gateway reads it: split on ``&`` and the first ``=``, then ``unquote``, not
    ``unquote_plus``: a ``+`` on the wire is a plus, whatever a form encoder meant by it."""
    pairs = []
    for item in raw_query.split("&"):
        name, _, value = item.partition("=")
        if name:
            pairs.append((unquote(name), unquote(value)))
    return pairs


def wire_url(url: str, query: Mapping[str, str]) -> httpx.URL:
    """``url`` with ``query`` as its canonical string (sorted, RFC 3986: a space is %20), given to httpx as
    bytes so it goes out unchanged; ``params=`` would send a space as ``+``, which the signature does not cover."""
    canonical = canonical_query(list(query.items()))
    return httpx.URL(url, query=canonical.encode("ascii")) if canonical else httpx.URL(url)


def canonical_request(method: str, url: str, headers: Mapping[str, str], signed: list[str], body: bytes = b"") -> str:
    parts = urlsplit(url)
    pairs = query_pairs(parts.query)
    lowered = {k.lower(): str(v).strip() for k, v in headers.items()}
    header_block = "".join(f"{name}:{lowered[name]}\n" for name in signed)
    payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_SHA256
    return "\n".join(
        [
            method.upper(),
            canonical_uri(parts.path or "/"),
            canonical_query(pairs),
            header_block,
            ";".join(signed),
            payload_hash,
        ]
    )


def string_to_sign(canonical: str, sdk_date: str) -> str:
    return f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"


def signature(secret_key: str, to_sign: str) -> str:
    return hmac.new(secret_key.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


def sign_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    access_key: str,
    secret_key: str,
    *,
    body: bytes = b"",
    security_token: str | None = None,
    project_id: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """Return the headers to add: ``X-Sdk-Date``, ``Authorization`` (and ``X-Security-Token``,
    ``X-Project-Id``).

    Signed are ``host``, ``x-sdk-date``, ``content-type`` when present, the security token and the project:
    enough to bind the request to its target, project and time without signing headers a proxy may rewrite.
    ``X-Project-Id`` is what the SDK's ``BasicCredentials`` adds and signs for a project-scoped request.
    """
    sdk_date = (now or datetime.now(UTC)).strftime(DATE_FORMAT)
    added = {"X-Sdk-Date": sdk_date}
    if security_token:
        added["X-Security-Token"] = security_token
    if project_id:
        added["X-Project-Id"] = project_id
    merged = {**{k.lower(): v for k, v in headers.items()}, **{k.lower(): v for k, v in added.items()}}
    if "host" not in merged:
        merged["host"] = urlsplit(url).netloc
    signed = sorted(name for name in merged if name in _SIGNED)
    canonical = canonical_request(method, url, merged, signed, body)
    sig = signature(secret_key, string_to_sign(canonical, sdk_date))
    added["Authorization"] = f"{ALGORITHM} Access={access_key}, SignedHeaders={';'.join(signed)}, Signature={sig}"
    return added
