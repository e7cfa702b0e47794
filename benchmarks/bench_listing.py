"""Benchmark: list every service at 1 000 / 10 000 / 100 000 emulated v1 services and 10 000 v2 services, and
`ask failed` at 10 000 of each.

Each size runs the emulator in its own process (the API side) and the client in another fresh process, so
the client's peak memory (ru_maxrss) is its own. Against a baseline in the same run: the same client paging
one request at a time (concurrency 1), so the ratio survives a noisy shared machine.

    python benchmarks/bench_listing.py            # all sizes
    python benchmarks/bench_listing.py --sizes 1000 10000 --v2-sizes 10000 --repeat 3

Each generation is read by a target pinned to it (``api_generation`` v1 or v2) from a fleet of that
generation only, so a row measures one API's paging: v1 pages of 1 000, v2 pages of at most 500.

``--against PYTHON`` compares this checkout with another one in the same run (issue 17): PYTHON is the
interpreter of a venv where the other checkout is installed (not editable), e.g. the base commit's. Each fleet
size then alternates the two clients ``--rounds`` times, and also times a client that only downloads the same
requests' bytes (the emulator's share of the wall: it encodes the pages on the same cores):

    python benchmarks/bench_listing.py --sizes 100000 --v2-sizes --latency-ms 0 \
        --against /tmp/listing-base/.venv/bin/python --rounds 3
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
PROJECT, TOKEN = "emulator-project", "emulator-token"


def bytes_run(url: str, queries: list[str], concurrency: int) -> dict[str, float]:
    """Runs in a fresh process: send the listing's requests again, ``concurrency`` at a time, and only read the
    bytes: what the wall would be if the client cost nothing."""

    async def main() -> dict[str, float]:
        slots = asyncio.Semaphore(concurrency)
        async with httpx.AsyncClient(headers={"X-Auth-Token": TOKEN}, timeout=120) as http:

            async def one(query: str) -> int:
                async with slots:
                    response = await http.get(f"{url}/v1/{PROJECT}/services?{query}")
                    response.raise_for_status()
                    return len(response.content)

            started = time.perf_counter()
            sizes = await asyncio.gather(*(one(q) for q in queries))
            return {"seconds": time.perf_counter() - started, "bytes": sum(sizes), "requests": len(queries)}

    return asyncio.run(main())


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


def in_subprocess(
    url: str, concurrency: int, mode: str, repeat: int, generation: str, python: str = sys.executable
) -> dict[str, float]:
    """The client in a fresh process of ``python``, run from outside any checkout, so it imports the
    ``services_bot`` installed for that interpreter (this checkout's editable install, or ``--against``'s)."""
    out = subprocess.run(
        [python, __file__, "--client", url, str(concurrency), mode, str(repeat), generation],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def bytes_in_subprocess(url: str, queries: list[str], concurrency: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--bytes", url, str(concurrency), json.dumps(queries)],
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def listing_queries(url: str) -> list[str]:
    """The list requests of the emulator's log since it was last cleared (the last listing's)."""
    log = httpx.get(f"{url}/_emulator/requests").json()["log"]
    return [entry["query"] for entry in log if entry["path"].endswith("/services")]


def compare(sizes: list[int], against: str, rounds: int, repeat: int) -> None:
    """This checkout against ``against``'s, alternating in one run, with the bytes-only client beside them."""
    print(
        "| services | round | this checkout: wall | peak RSS | --against: wall | peak RSS | bytes only: wall "
        "| requests | response bytes |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in sizes:
        proc, url = start_emulator(size)
        try:
            in_subprocess(url, 8, "list", 1, "v1")  # warm the emulator's encoded pages
            for number in range(1, rounds + 1):
                runs = [("new", sys.executable), ("old", against)]
                if number % 2 == 0:
                    runs.reverse()
                got = {name: in_subprocess(url, 8, "list", repeat, "v1", python) for name, python in runs}
                httpx.delete(f"{url}/_emulator/requests")
                in_subprocess(url, 8, "list", 1, "v1")
                raw = bytes_in_subprocess(url, listing_queries(url), 8)
                new, old = got["new"], got["old"]
                print(
                    f"| {size:,} | {number} | {new['seconds']:.2f} s | {new['peak_rss_mb']:.0f} MB | "
                    f"{old['seconds']:.2f} s | {old['peak_rss_mb']:.0f} MB | {raw['seconds']:.2f} s | "
                    f"{int(raw['requests'])} | {int(raw['bytes']):,} |",
                    flush=True,
                )
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--client":
        _, _, url, concurrency, mode, repeat, generation = sys.argv
        print(json.dumps(client_run(url, int(concurrency), mode, int(repeat), generation)))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--bytes":
        _, _, url, concurrency, queries = sys.argv
        print(json.dumps(bytes_run(url, json.loads(queries), int(concurrency))))
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
    parser.add_argument("--against", help="python of a venv with another checkout installed: compare the two (v1)")
    parser.add_argument("--rounds", type=int, default=3, help="with --against: alternations per fleet size")
    args = parser.parse_args()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"machine: {platform.machine()}, {python}, {os.cpu_count()} cores")
    if args.against:
        compare(args.sizes, args.against, args.rounds, args.repeat)
        return
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
    if sys.argv[1:2] not in (["--client"], ["--bytes"]):  # a client imports the services_bot of its interpreter
        sys.path.insert(0, str(ROOT))
        from benchmarks.emulator_process import start_emulator
    main()
