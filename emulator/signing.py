"""Verification of Huawei Cloud AK/SK request signatures (``SDK-HMAC-SHA256``), written independently.

The algorithm is the one of the API Gateway signer and of ``huaweicloudsdkcore.signer.Signer``:

- canonical request = ``METHOD\\nURI\\nQUERY\\nHEADERS\\nSIGNED_HEADERS\\nHEX(SHA256(body))`` where
  URI is the unescaped path, each segment percent-encoded (only ``~`` and unreserved characters kept) and a
  trailing ``/`` added; QUERY is the raw query read as the API gateway's reference verifier reads it (split
  on ``&`` and the first ``=``, each side ``unquote``-d, so a ``+`` stays a literal ``+``, never a space),
  the pairs sorted and percent-encoded the same way, joined by ``&``; HEADERS is ``name:trimmed value\\n``
  for each signed header (lower-case names, sorted order as listed in ``SignedHeaders``); the body hash is
  the empty-string hash for an empty body, or the value of ``X-Sdk-Content-Sha256`` when present
  (``UNSIGNED-PAYLOAD``);
- string to sign = ``SDK-HMAC-SHA256\\n<X-Sdk-Date>\\n<HEX(SHA256(canonical request))>``;
- signature = ``HEX(HMAC-SHA256(SK, string to sign))``, sent as
  ``Authorization: SDK-HMAC-SHA256 Access=<AK>, SignedHeaders=<h1;h2>, Signature=<hex>``.

It is deliberately a second implementation (it does not import the SDK): a test signs with the SDK and this
module must agree, which catches misreadings on either side. Reading the query strictly is what makes the
emulator disagree with a lax client: one that signs a space as ``%20`` but sends ``+`` (a form encoder's
habit) gets the gateway's 401 here too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, unquote

ALGORITHM = "SDK-HMAC-SHA256"
DATE_FORMAT = "%Y%m%dT%H%M%SZ"
MAX_SKEW_SECONDS = 15 * 60
EMPTY_HASH = hashlib.sha256(b"").hexdigest()
_AUTH = re.compile(
    r"^SDK-HMAC-SHA256\s+Access=(?P<ak>[^,\s]+)\s*,\s*SignedHeaders=(?P<sh>[^,\s]+)\s*,\s*Signature=(?P<sig>[0-9a-fA-F]+)\s*$"
)


class SignatureError(Exception):
    """Why a signed request is refused; the message never contains the SK or the expected signature."""


@dataclass(frozen=True)
class Verified:
    """A request whose signature holds: who signed it, and which headers the signature vouches for."""

    access_key: str
    signed_headers: tuple[str, ...]


def _encode(s: str) -> str:
    return quote(s, safe="~")


def canonical_uri(raw_path: str) -> str:
    path = "/".join(_encode(seg) for seg in unquote(raw_path).split("/"))
    return path if path.endswith("/") else path + "/"


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Split on ``&`` and the first ``=``, skip empty names, ``unquote`` both sides (not ``unquote_plus``)."""
    pairs = []
    for item in raw_query.split("&"):
        key, _, value = item.partition("=")
        if key:
            pairs.append((unquote(key), unquote(value)))
    return pairs


def canonical_query(raw_query: str) -> str:
    return "&".join(f"{_encode(k)}={_encode(v)}" for k, v in sorted(query_pairs(raw_query)))


def canonical_request(
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    signed_headers: list[str],
    body: bytes,
) -> str:
    lines = []
    for name in signed_headers:
        if name not in headers:
            raise SignatureError(f"signed header '{name}' is missing from the request")
        lines.append(f"{name}:{headers[name].strip()}")
    # an unsigned payload is announced by the client in X-Sdk-Content-Sha256 ("UNSIGNED-PAYLOAD")
    payload_hash = (headers.get("x-sdk-content-sha256") or hashlib.sha256(body).hexdigest()) if body else EMPTY_HASH
    return "\n".join(
        [
            method.upper(),
            canonical_uri(raw_path),
            canonical_query(raw_query),
            "\n".join(lines) + "\n",
            ";".join(signed_headers),
            payload_hash,
        ]
    )


def sign(sk: str, sdk_date: str, canonical: str) -> str:
    string_to_sign = f"{ALGORITHM}\n{sdk_date}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(sk.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()


def verify(
    *,
    authorization: str,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: Mapping[str, str],
    security_token: str | None,
    now: datetime | None = None,
) -> Verified:
    """Check a signed request; returns who signed what, or raises ``SignatureError`` saying why not.

    ``headers`` must have lower-case names. ``keys`` maps access keys to secret keys.
    """
    m = _AUTH.match(authorization.strip())
    if m is None:
        raise SignatureError("malformed Authorization header for SDK-HMAC-SHA256")
    ak, signed, signature = m.group("ak"), m.group("sh"), m.group("sig").lower()
    sk = keys.get(ak)
    if sk is None:
        raise SignatureError("unknown access key")
    signed_headers = [h.strip().lower() for h in signed.split(";") if h.strip()]
    if "host" not in signed_headers:
        raise SignatureError("the host header must be signed")
    sdk_date = headers.get("x-sdk-date")
    if not sdk_date:
        raise SignatureError("missing X-Sdk-Date header")
    try:
        t = datetime.strptime(sdk_date, DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureError("X-Sdk-Date is not in the format YYYYMMDDTHHMMSSZ") from None
    now = now or datetime.now(UTC)
    if abs((now - t).total_seconds()) > MAX_SKEW_SECONDS:
        raise SignatureError("request expired: X-Sdk-Date is more than 15 minutes off")
    if security_token is not None:
        given = headers.get("x-security-token")
        if given is None:
            raise SignatureError("missing X-Security-Token for temporary AK/SK")
        if not hmac.compare_digest(given.encode(), security_token.encode()):
            raise SignatureError("invalid X-Security-Token")
    canonical = canonical_request(method, raw_path, raw_query, headers, signed_headers, body)
    if not hmac.compare_digest(sign(sk, sdk_date, canonical), signature):
        raise SignatureError("signature mismatch")
    return Verified(ak, tuple(signed_headers))
