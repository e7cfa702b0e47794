"""Benchmark: what one watcher poll costs at 10 000 services with 0, 5 and 500 changes since the last poll,
against a naive full listing; and how much memory the watcher's tracked state takes at 10 000 and 100 000.

The emulator runs in its own process; the watcher runs here with an httpx transport that counts requests and
response body bytes. Changes are made through the emulator's control API (not counted) between polls.

    python benchmarks/bench_polling.py                 # 10 000 services, memory at 10 000 and 100 000
    python benchmarks/bench_polling.py --memory-sizes 10000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services_bot.core.auth import StaticToken  # noqa: E402
from services_bot.core.client import ListParams, ModelArtsClient  # noqa: E402
from services_bot.core.config import Target  # noqa: E402
from services_bot.core.generations import TargetClient  # noqa: E402
from services_bot.core.store import Store  # noqa: E402
from services_bot.core.watcher import Watcher  # noqa: E402

from benchmarks.emulator_process import start_emulator  # noqa: E402

PROJECT, TOKEN = "emulator-project", "emulator-token"


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts requests and response body bytes (as received; the emulator does not compress)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.requests = 0
        self.bytes = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        body = await response.aread()
        self.requests += 1
        self.bytes += len(body)
        return httpx.Response(response.status_code, headers=response.headers, content=body, request=request)

    async def aclose(self) -> None:
        await self.inner.aclose()

    def take(self) -> tuple[int, int]:
        counts = (self.requests, self.bytes)
        self.requests = self.bytes = 0
        return counts


def deep_size(known: dict[str, Any]) -> int:
    """Bytes of the tracked-state dict, its entries and their strings (each distinct object counted once)."""
    seen: set[int] = set()
    total = sys.getsizeof(known)
    for key, entry in known.items():
        for obj in (key, entry, *(getattr(entry, f) for f in entry.__slots__)):
            if obj is not None and id(obj) not in seen:
                seen.add(id(obj))
                total += sys.getsizeof(obj)
    return total


def db_size_mb(folder: Path) -> float:
    """The SQLite file plus its WAL, as left after the polls."""
    return sum(p.stat().st_size for p in folder.glob("bench.db*")) / 1e6


@dataclass
class Row:
    label: str
    requests: float
    bytes: float
    seconds: float
    details: float = 0


async def open_watcher(url: str, db: Path, counter: CountingTransport) -> tuple[httpx.AsyncClient, Watcher, Store]:
    http = httpx.AsyncClient(transport=counter, timeout=60)
    target = Target(name="bench", endpoint=url, project_id=PROJECT, api_generation="v1")  # a v1 fleet's costs
    client = ModelArtsClient(http, target, StaticToken(SecretStr(TOKEN)), page_size=1000)
    store = await Store(db).open()
    await store.ensure_default_subscription("C-alerts", {"failed", "concerning"})
    return http, Watcher([TargetClient(target, [client])], store), store


def change(control: httpx.Client, ids: list[str], n: int, rng: random.Random) -> None:
    for service_id in rng.sample(ids, n):
        status = rng.choice(["failed", "concerning", "running", "stopped"])
        control.post(f"/services/{service_id}/status", json={"status": status}).raise_for_status()


async def polling_costs(services: int, repeat: int) -> list[Row]:
    proc, url = start_emulator(services)
    try:
        counter = CountingTransport()
        control = httpx.Client(base_url=url + "/_emulator", timeout=60)
        with tempfile.TemporaryDirectory() as tmp:
            http, watcher, store = await open_watcher(url, Path(tmp) / "bench.db", counter)
            try:
                await watcher.poll_once()  # baseline
                await watcher.poll_once()  # the run's first scan also checks once that the API sorts as asked
                counter.take()
                ids = list(watcher.targets["bench"].known or {})
                rng = random.Random(5)
                rows: list[Row] = []
                client = watcher.clients[0]
                samples: list[tuple[int, int, float]] = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    await client.list_all(ListParams())
                    samples.append((*counter.take(), time.perf_counter() - started))
                rows.append(_row("naive full listing (any number of changes)", samples, []))
                for n in (0, 5, 500):
                    samples, details = [], []
                    for _ in range(repeat):
                        change(control, ids, n, rng)
                        started = time.perf_counter()
                        result = await watcher.poll_once()
                        elapsed = time.perf_counter() - started
                        assert result.ok and result.targets[0].mode == "incremental", result.targets
                        assert len(result.transitions) <= n
                        samples.append((*counter.take(), elapsed))
                        details.append(result.targets[0].detail_requests)
                    rows.append(_row(f"watcher steady-state poll, {n} changes", samples, details))
                return rows
            finally:
                await store.close()
                await http.aclose()
    finally:
        proc.terminate()
        proc.wait()


def _row(label: str, samples: list[tuple[int, int, float]], details: list[int]) -> Row:
    return Row(
        label,
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
        statistics.median(s[2] for s in samples),
        statistics.median(details) if details else 0,
    )


def proc_status_mb(field: str) -> float:
    """A ``/proc/self/status`` field in MB: ``VmRSS`` now, ``VmHWM`` the peak since start (or the last reset)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e6
    raise KeyError(field)


def reset_peak() -> bool:
    """Restart ``VmHWM`` from the current RSS (Linux ``clear_refs`` 5), so each phase gets its own peak."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


async def memory(services: int, polls: int = 3, changes: int = 5) -> dict[str, Any]:
    """Run in a fresh process (``--memory-child``): baseline, ``polls`` steady-state polls with ``changes``
    status changes before each, then one resync (a full listing with the state already known). The emulator
    is a separate process, so the peaks are the watcher's own (interpreter and libraries included)."""
    proc, url = start_emulator(services)
    try:
        counter = CountingTransport()
        control = httpx.Client(base_url=url + "/_emulator", timeout=60)
        with tempfile.TemporaryDirectory() as tmp:
            http, watcher, store = await open_watcher(url, Path(tmp) / "bench.db", counter)
            try:
                gc.collect()
                before = proc_status_mb("VmRSS")
                phases = reset_peak()
                started = time.perf_counter()
                result = await watcher.poll_once()
                baseline_s = time.perf_counter() - started
                assert result.ok and result.targets[0].mode == "baseline", result.targets
                baseline_peak = proc_status_mb("VmHWM")
                gc.collect()
                after = proc_status_mb("VmRSS")
                phases = phases and reset_peak()
                await watcher.poll_once()  # the run's first scan also checks once that the API sorts as asked
                counter.take()
                started = time.perf_counter()
                result = await watcher.poll_once()
                quiet_s = time.perf_counter() - started
                assert result.ok and result.targets[0].mode == "incremental", result.targets
                quiet_requests, quiet_bytes = counter.take()
                known = watcher.targets["bench"].known or {}
                ids, rng = list(known), random.Random(9)
                for _ in range(polls):
                    change(control, ids, changes, rng)
                    result = await watcher.poll_once()
                    assert result.ok and result.targets[0].mode == "incremental", result.targets
                watcher.targets["bench"].polls_since_full = watcher.resync_polls - 1
                started = time.perf_counter()
                result = await watcher.poll_once()
                resync_s = time.perf_counter() - started
                assert result.ok and result.targets[0].reason == "resync", result.targets
                return {
                    "services": len(known),
                    "state_mb": deep_size(known) / 1e6,
                    "rss_before_mb": before,
                    "baseline_peak_mb": baseline_peak,
                    "rss_after_mb": after,
                    "later_peak_mb": proc_status_mb("VmHWM"),
                    "phases": phases,
                    "baseline_s": baseline_s,
                    "resync_s": resync_s,
                    "quiet_requests": quiet_requests,
                    "quiet_bytes": quiet_bytes,
                    "quiet_s": quiet_s,
                    "db_mb": db_size_mb(Path(tmp)),
                }
            finally:
                await store.close()
                await http.aclose()
    finally:
        proc.terminate()
        proc.wait()


def memory_in_child(services: int) -> dict[str, Any]:
    """``memory`` in a fresh interpreter, so earlier runs (and the parent's own allocations) do not count."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child", str(services)], cwd=ROOT, check=True, capture_output=True
    )
    return json.loads(out.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--skip-costs", action="store_true", help="only the memory table")
    parser.add_argument("--memory-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        print(json.dumps(asyncio.run(memory(args.memory_child))))
        return

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    if not args.skip_costs:
        print_costs(args.services, args.repeat)
    if args.memory_sizes:
        print("\n### Tracked state and the watcher's memory (a fresh process per size)\n")
        print(
            "| services | tracked state (deep size) | RSS before baseline | peak RSS in baseline | "
            "RSS after baseline | peak RSS in 4 polls + resync | baseline poll | resync poll | "
            "quiet poll (requests, bytes, time) | SQLite file |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for size in args.memory_sizes:
            m = memory_in_child(size)
            later = f"{m['later_peak_mb']:.0f} MB" if m["phases"] else "(no per-phase peak)"
            print(
                f"| {m['services']:,.0f} | {m['state_mb']:.1f} MB | {m['rss_before_mb']:.0f} MB "
                f"| {m['baseline_peak_mb']:.0f} MB | {m['rss_after_mb']:.0f} MB | {later} "
                f"| {m['baseline_s']:.1f} s | {m['resync_s']:.1f} s "
                f"| {m['quiet_requests']:.0f}, {m['quiet_bytes']:,.0f} B, {m['quiet_s'] * 1000:.0f} ms "
                f"| {m['db_mb']:.1f} MB |"
            )


def print_costs(services: int, repeat: int) -> None:
    rows = asyncio.run(polling_costs(services, repeat))
    naive = rows[0]
    print(f"\n### Cost of one poll at {services:,} services (median of {repeat})\n")
    print("| poll | API list requests | response bytes | detail lookups | time | bytes vs naive |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        ratio = f"{naive.bytes / row.bytes:,.0f}× less" if row is not naive and row.bytes else "—"
        listed = row.requests - row.details
        print(
            f"| {row.label} | {listed:g} | {row.bytes:,.0f} B | {row.details:g} "
            f"| {row.seconds * 1000:,.0f} ms | {ratio} |"
        )


if __name__ == "__main__":
    main()
