"""Benchmark: list every service at 1 000 / 10 000 / 100 000 emulated v1 services and 10 000 v2 services, and
`ask failed` at 10 000 of each.

Each size runs the emulator in its own process (the API side) and the client in another fresh process, so
the client's peak memory (ru_maxrss) is its own. Against a baseline in the same run: the same client paging
one request at a time (concurrency 1), so the ratio survives a noisy shared machine.

    python benchmarks/bench_listing.py            # all sizes
    python benchmarks/bench_listing.py --sizes 1000 10000 --v2-sizes 10000 --repeat 3

Each generation is read by a target pinned to it (``api_generation`` v1 or v2) from a fleet of that
generation only, so a row measures one API's paging: v1 pages of 1 000, v2 pages of at most 500.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.emulator_process import start_emulator  # noqa: E402

PROJECT, TOKEN = "emulator-project", "emulator-token"




def client_run(url: str, concurrency: int, mode: str, repeat: int, generation: str) -> dict[str, float]:
    """Runs in a fresh process: list everything ``repeat`` times, report the best wall time and peak RSS."""
    from services_bot.core.client import ListParams

    from services_bot.answers import answer
    from services_bot.wiring import local_settings, open_queries

    settings = local_settings(
        url,
        PROJECT,
        TOKEN,
        services_bot_concurrency=concurrency,
        services_bot_cache_seconds=0,
        modelarts_api_generation=generation,
    )

    async def main() -> dict[str, float]:
        async with open_queries(settings) as queries:
            client = queries.clients[0]
            if mode == "ask":
                times = []
                for _ in range(repeat):
                    started = time.perf_counter()
                    await answer(queries, "failed", as_json=False)
                    times.append(time.perf_counter() - started)
                times.sort()
                return {"p50_ms": statistics.median(times) * 1000, "p99_ms": times[-1] * 1000, "runs": repeat}
            best = float("inf")
            count = 0
            requests = 0
            for _ in range(repeat):
                sent = client.requests_sent
                started = time.perf_counter()
                services = await client.list_all(ListParams())
                best = min(best, time.perf_counter() - started)
                count = len(services)
                requests = client.requests_sent - sent
                del services
            return {"seconds": best, "services": count, "requests": requests}

    result = asyncio.run(main())
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def in_subprocess(url: str, concurrency: int, mode: str, repeat: int, generation: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--client", url, str(concurrency), mode, str(repeat), generation],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, concurrency, mode, repeat, generation = sys.argv
        print(json.dumps(client_run(url, int(concurrency), mode, int(repeat), generation)))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000], help="v1 fleet sizes")
    parser.add_argument("--v2-sizes", type=int, nargs="*", default=[10_000], help="v2 fleet sizes")
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=50,
        help="also list 10 000 services with this much added per request (0: skip)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {python}, {os.cpu_count()} cores")
    print(
        "| API | services | added latency | listed | requests | wall, 8 at a time | wall, sequential | speed-up "
        "| peak RSS |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    scenarios = [("v1", size, 0) for size in args.sizes] + [("v2", size, 0) for size in args.v2_sizes]
    if args.latency_ms:
        scenarios += [(gen, 10_000, args.latency_ms) for gen in ("v1", "v2")]
    ask_lines: list[str] = []
    for generation, size, latency in scenarios:
        proc, url = start_emulator(size, generations=generation)
        try:
            httpx.post(f"{url}/_emulator/faults", json={"latency_ms": latency}).raise_for_status()
            fast = in_subprocess(url, 8, "list", args.repeat, generation)
            slow = in_subprocess(url, 1, "list", args.repeat, generation)
            print(
                f"| {generation} | {size:,} | {latency} ms | {int(fast['services']):,} | {int(fast['requests'])} | "
                f"{fast['seconds']:.2f} s | {slow['seconds']:.2f} s | {slow['seconds'] / fast['seconds']:.1f}× | "
                f"{fast['peak_rss_mb']:.0f} MB |"
            )
            if size == 10_000 and latency == 0:
                ask = in_subprocess(url, 8, "ask", 30, generation)
                ask_lines.append(
                    f"`ask failed` at 10,000 {generation} services: p50 {ask['p50_ms']:.0f} ms, "
                    f"max of 30 {ask['p99_ms']:.0f} ms"
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    if ask_lines:
        print()
        print("\n".join(ask_lines))


if __name__ == "__main__":
    main()
