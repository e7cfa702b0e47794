"""Benchmark: `/services` answers from a live listing against answers from the watcher's state (issue 17).

For each fleet size and added API latency, two `services-bot serve` processes answer the same commands against
the same emulator: one with `--no-watch` (every answer lists the fleet: the live path, cache off, as `ask`
and stdio `mcp` do) and one with its watcher (answers read the watcher's state after its on-demand
incremental poll). Per command: answer p50/p99 (from the signed command to the answer stored by the Slack
stand-in, as in `bench_slack.py`), API requests per answer (the emulator's request counter, cleared before
each answer: list pages, details and the poll) and the ratio of the p99s.

The watcher's own loop is set to poll every 10 minutes and `SERVICES_BOT_ANSWER_FRESH_SECONDS` to 0, so
every answer of the state path pays its own poll: the worst case (by default, answers within a second of a
poll share it and cost no request). Three processes: the emulator, the bot under test, and this client with
the stand-in.

    python benchmarks/bench_answers.py
    python benchmarks/bench_answers.py --sizes 10000 --latencies 0 --repeat 5

``--base DIR`` compares the state path with the state path of another checkout (its own ``.venv``, e.g.
``git worktree add /tmp/base <commit>``) in the same run, instead of with the live path. Either way both bots
run at once and take turns command by command against the same emulator, so the machine's noise falls on both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services_bot.workspace import (  # noqa: E402 - after the path is set, so the script runs from anywhere
    UserSpec,
    WorkspaceClient,
    WorkspaceServer,
    WorkspaceSettings,
)

from benchmarks.bench_slack import (  # noqa: E402
    PROJECT,
    TOKEN,
    USERS,
    Answers,
    click_next,
    is_error,
    one,
    percentile,
    stop,
    unique_names,
    wait_first_poll,
    wait_healthy,
)
from benchmarks.emulator_process import free_port, start_emulator  # noqa: E402

COMMANDS = ["summary", "failed", "limit:40", "show {name}", "Next"]


def run_bot(config: dict[str, Any]) -> None:
    """In the bot's own process: `services-bot serve`, with or without its watcher."""
    from services_bot.serve import run_serve
    from services_bot.wiring import local_settings

    settings = local_settings(
        config["emulator"],
        PROJECT,
        TOKEN,
        slack_bot_token=config["bot_token"],
        slack_signing_secret=config["signing_secret"],
        slack_app_token=None,
        slack_api_url=config["api_url"],
        services_bot_cache_seconds=0.0,
        services_bot_db=config["db"],
        services_bot_poll_seconds=600.0,
        services_bot_answer_fresh_seconds=config["fresh"],
        services_bot_timeout_seconds=60.0,
    )
    run_serve(settings, host="127.0.0.1", port=config["port"], mcp=False, watch=config["watch"])


def start_bot(
    emulator_url: str,
    workspace: WorkspaceServer,
    *,
    watch: bool,
    fresh: float,
    logdir: Path,
    root: Path = ROOT,
    name: str | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """``services-bot serve`` in its own process, from the checkout at ``root`` (its ``.venv``, or this
    interpreter for this checkout)."""
    port = free_port()
    name = name or ("state" if watch else "live")
    python = sys.executable if root == ROOT else str(root / ".venv" / "bin" / "python")
    log = logdir / f"bot-{name}.log"
    config = {
        "emulator": emulator_url,
        "bot_token": workspace.settings.bot_token,
        "signing_secret": workspace.settings.signing_secret,
        "api_url": workspace.api_url,
        "port": port,
        "watch": watch,
        "fresh": fresh,
        "db": str(logdir / f"store-{name}-{time.monotonic_ns()}.db"),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [python, str(root / "benchmarks" / "bench_answers.py"), "--bot", json.dumps(config)],
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/healthz", proc, "the bot", log)
    if watch:
        wait_first_poll(url, 300)  # a first listing of 100 000 services takes a while
    return proc, url


@dataclass
class Samples:
    answer_ms: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    errors: int = 0


async def requests_now(emulator: httpx.AsyncClient) -> int:
    return int((await emulator.get("/requests")).json()["total"])


async def measure(
    client: WorkspaceClient,
    answers: Answers,
    emulator: httpx.AsyncClient,
    bots: dict[str, str],
    repeat: int,
    names: list[str],
) -> dict[str, dict[str, Samples]]:
    """Each command ``repeat`` times, one at a time, taking turns between the ``bots`` (path -> Slack events
    URL) command by command, so a burst of noise on the shared machine falls on both; Next is a click on the
    answer of `limit:40`."""
    out = {path: {command: Samples() for command in COMMANDS} for path in bots}
    user = USERS[0]
    for url in bots.values():  # warm-up: connections, imports, the first poll's details
        await client.set_app_url(url)
        await one(client, answers, "failed", user)
    for i in range(repeat):
        for command in COMMANDS:
            if command == "Next":
                continue
            for path, url in bots.items():
                await client.set_app_url(url)
                await client.reset()
                await emulator.delete("/requests")
                _ack, answer, message = await one(client, answers, command.format(name=names[i % len(names)]), user)
                record(out[path][command], answer, message, await requests_now(emulator))
                if command == "limit:40" and message is not None and not is_error(message):
                    await emulator.delete("/requests")
                    _ack, answer, updated = await click_next(client, answers, message, user)
                    record(out[path]["Next"], answer, updated, await requests_now(emulator))
    return out


def record(samples: Samples, answer: float | None, message: dict[str, Any] | None, requests: int) -> None:
    if answer is None or message is None or is_error(message):
        samples.errors += 1
        return
    samples.answer_ms.append(answer)
    samples.requests.append(requests)


def cell(s: Samples) -> str:
    if not s.answer_ms:
        return f"— | — | — | {s.errors}"
    requests = f"{statistics.median(s.requests):g} (max {max(s.requests)})"
    return f"{statistics.median(s.answer_ms):.0f} ms | {percentile(s.answer_ms, 99):.0f} ms | {requests} | {s.errors}"


async def bench(args: argparse.Namespace, workspace: WorkspaceServer, logdir: Path) -> None:
    for size in args.sizes:
        emulator_proc, emulator_url = start_emulator(size, seed=args.seed)
        try:
            names = unique_names(emulator_url, 50)
            async with (
                WorkspaceClient(workspace.url) as client,
                httpx.AsyncClient(base_url=emulator_url + "/_emulator", trust_env=False, timeout=60) as emulator,
            ):
                for latency in args.latencies:
                    paths = [("live", False, ROOT), ("state", True, ROOT)]
                    if args.base:
                        paths = [("base", True, args.base), ("state", True, ROOT)]
                    await emulator.post("/faults", json={"latency_ms": 0})
                    bots = {
                        path: start_bot(
                            emulator_url,
                            workspace,
                            watch=watch,
                            fresh=args.fresh_seconds,
                            logdir=logdir,
                            root=root,
                            name=path,
                        )
                        for path, watch, root in paths
                    }
                    answers = Answers(client)
                    try:
                        await answers.start()
                        (await emulator.post("/faults", json={"latency_ms": latency})).raise_for_status()
                        urls = {path: url + "/slack/events" for path, (_proc, url) in bots.items()}
                        results = await measure(client, answers, emulator, urls, args.repeat, names)
                    finally:
                        await answers.stop()
                        for proc, _url in bots.values():
                            stop(proc)
                    await emulator.post("/faults", json={"latency_ms": 0})
                    for command in COMMANDS:
                        live, state = results[paths[0][0]][command], results["state"][command]
                        ratio = (
                            f"{percentile(live.answer_ms, 99) / percentile(state.answer_ms, 99):.1f}×"
                            if live.answer_ms and state.answer_ms
                            else "—"
                        )
                        shown = command.replace("{name}", "NAME")
                        print(
                            f"| {size:,} | {latency} ms | `{shown}` | {cell(live)} | {cell(state)} | {ratio} |",
                            flush=True,
                        )
        finally:
            stop(emulator_proc)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--bot":
        run_bot(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latencies", type=int, nargs="+", default=[0, 200], help="ms added to every API request")
    parser.add_argument("--repeat", type=int, default=10, help="runs of each command per path")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fresh-seconds", type=float, default=0.0, help="SERVICES_BOT_ANSWER_FRESH_SECONDS")
    parser.add_argument(
        "--base", type=Path, help="a checkout whose state path is the baseline (in place of the live path)"
    )
    args = parser.parse_args()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.machine()}, {cpus} CPUs, {python}")
    started = time.monotonic()
    workspace = WorkspaceServer(
        WorkspaceSettings(users=[UserSpec(id=u, name=f"bench{i}") for i, u in enumerate(USERS)])
    )
    workspace.start()
    try:
        with tempfile.TemporaryDirectory() as logdir:
            first = "base" if args.base else "live"
            print(
                f"| services | API latency | command | {first} p50 | {first} p99 | {first} requests | {first} errors "
                f"| state p50 | state p99 | state requests | state errors | p99 {first}/state |"
            )
            print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
            asyncio.run(bench(args, workspace, Path(logdir)))
    finally:
        workspace.stop()
    print(f"\n{time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
