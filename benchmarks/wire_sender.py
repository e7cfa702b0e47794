"""A sender of signed Slack requests in a process of its own, timing each ack on the wire.

Ten commands at once timed inside the Slack stand-in measure the stand-in too: its event loop builds, sends and
parses ten httpx requests (and records the bot's answers) while the clocks run, and it shares the GIL with the
benchmark's client. Here each round's requests arrive already signed (the stand-in's ``send: false``), one
TCP connection per request is opened before the clock starts, and the clock of a request runs from the
``send`` of its bytes to the arrival of the last byte of its HTTP response: a blocking loop of ``send`` and
``select``, with nothing else in this process to wait for.

Protocol (one JSON document a line): stdin gets ``[{"url", "headers", "body"}, ...]`` per round; stdout answers
``[{"status", "ack_ms", "sent_at", "ack_body"}, ...]`` in the same order (``sent_at``: ``time.time()`` at the
send, for answer times measured elsewhere on the same machine).
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time
from typing import Any
from urllib.parse import urlsplit

TIMEOUT = 10.0


def raw_request(url: str, headers: dict[str, str], body: str) -> tuple[tuple[str, int], bytes]:
    parts = urlsplit(url)
    data = body.encode()
    lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {parts.netloc}", f"Content-Length: {len(data)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append("Connection: close")
    return (parts.hostname or "127.0.0.1", parts.port or 80), ("\r\n".join(lines) + "\r\n\r\n").encode() + data


def complete(buffer: bytes) -> bool:
    """Whether ``buffer`` holds a whole HTTP response (Content-Length, or chunked up to its last chunk)."""
    head, sep, rest = buffer.partition(b"\r\n\r\n")
    if not sep:
        return False
    fields = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    if b"content-length" in fields:
        return len(rest) >= int(fields[b"content-length"])
    if fields.get(b"transfer-encoding") == b"chunked":
        return rest.endswith(b"0\r\n\r\n")
    return False


def parse(buffer: bytes) -> tuple[int, Any]:
    head, _, rest = buffer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(rest) if rest else None
    except ValueError:
        return status, rest.decode(errors="replace")


def send_round(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Send every request at once and time each one's response."""
    prepared = [raw_request(r["url"], r["headers"], r["body"]) for r in requests]
    socks = []
    for address, _ in prepared:
        sock = socket.create_connection(address, timeout=TIMEOUT)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        socks.append(sock)
    results: list[dict[str, Any]] = [{"status": None, "ack_ms": None, "sent_at": None, "ack_body": None} for _ in socks]
    started = [0.0] * len(socks)
    buffers = [b""] * len(socks)
    with selectors.DefaultSelector() as selector:
        for i, (sock, (_, data)) in enumerate(zip(socks, prepared, strict=True)):
            results[i]["sent_at"] = time.time()
            started[i] = time.perf_counter()
            sock.sendall(data)
            sock.setblocking(False)
            selector.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + TIMEOUT
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                i = key.data
                chunk = socks[i].recv(65536)
                buffers[i] += chunk
                if complete(buffers[i]) or not chunk:
                    results[i]["ack_ms"] = round((time.perf_counter() - started[i]) * 1000, 3)
                    selector.unregister(socks[i])
    for i, sock in enumerate(socks):
        sock.close()
        if buffers[i] and complete(buffers[i]):
            results[i]["status"], results[i]["ack_body"] = parse(buffers[i])
        else:
            results[i]["ack_ms"] = None
    return results


def main() -> None:
    for line in sys.stdin:
        print(json.dumps(send_round(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
