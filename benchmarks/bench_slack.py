"""Benchmark: `/services` slash command ack latency and time to answer against 10 000 emulated services.

Three processes, as in production where Slack, the bot and ModelArts are apart: the emulator (the API) and
`services-bot serve` (the bot, HTTP mode) each run in their own process; the local Slack stand-in
(`services_bot.workspace`) and this client run here. The stand-in signs each command, POSTs it to the bot and
times the HTTP answer (`ack_ms`: from sending the signed request to the bot's 200). The bot then answers
through the command's response_url; time to answer runs from this client's call to `/_workspace/command`
until the stand-in stores that answer (the `at` stamp of its `ephemeral_posted` / `message_updated` event:
`time.time()` in this same process, read from the event feed so that long-poll delays do not count).

Rows: each command mix N times in a row with the bot's default cache (5 s, as in production) and with no
cache (the cold path); 10 commands at once (one per user, mixes rotating); and with every API request delayed
(`POST /_emulator/faults {"latency_ms": ...}`), to show the ack does not wait for ModelArts. `show {failed}`
shows a failed service, which adds its latest abnormal events and last update (two more requests, sent
together: issue 15); with the latency it runs ``--failed-repeat`` times for a p99 of its own.

    python benchmarks/bench_slack.py
    python benchmarks/bench_slack.py --repeat 100 --latency-ms 200
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
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

from benchmarks.emulator_process import free_port, start_emulator  # noqa: E402

PROJECT, TOKEN = "emulator-project", "emulator-token"
USERS = [f"U0BENCH{i:02d}" for i in range(32)]



def wait_healthy(url: str, proc: subprocess.Popen[bytes], what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(url, timeout=1, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.kill()
    tail = log.read_text()[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not start\n{tail}")



def run_bot(config: dict[str, Any]) -> None:
    """In the bot's own process: `services-bot serve` with production defaults, pointed at the emulator and
    the stand-in."""
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
        services_bot_cache_seconds=config["cache"],
        services_bot_db=config["db"],
    )
    run_serve(settings, host="127.0.0.1", port=config["port"], mcp=True, watch=config["watch"])


def start_bot(
    emulator_url: str, workspace: WorkspaceServer, cache: float, watch: bool, logdir: Path
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = logdir / f"bot-cache{cache:g}.log"
    config = {
        "emulator": emulator_url,
        "bot_token": workspace.settings.bot_token,
        "signing_secret": workspace.settings.signing_secret,
        "api_url": workspace.api_url,
        "cache": cache,
        "port": port,
        "watch": watch,
        "db": str(logdir / f"store-cache{cache:g}.db"),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--bot", json.dumps(config)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/healthz", proc, "the bot", log)
    deadline = time.monotonic() + 60
    while watch and time.monotonic() < deadline:  # let the watcher's first (full) poll finish before measuring
        health = httpx.get(f"{url}/healthz", timeout=5, trust_env=False).json()
        if (health.get("watcher") or {}).get("last_poll_age_seconds") is not None:
            break
        time.sleep(0.2)
    return proc, url


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def percentile(values: list[float], p: float) -> float:
    """Nearest rank: with fewer than 100 values p99 is the slowest one."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Answers:
    """Follows the stand-in's event feed and hands each answer to whoever waits for that user's next one."""

    def __init__(self, client: WorkspaceClient) -> None:
        self.client = client
        self.waiting: dict[str, asyncio.Future[tuple[float, dict[str, Any]]]] = {}
        self.last = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.last = (await self.client.info())["last_event"]
        self.task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    def expect(self, user: str) -> asyncio.Future[tuple[float, dict[str, Any]]]:
        future: asyncio.Future[tuple[float, dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self.waiting[user] = future
        return future

    async def _follow(self) -> None:
        while True:
            feed = await self.client.events(after=self.last, wait=10)
            self.last = feed["last"]
            for event in feed["events"]:
                message = event.get("message") or {}
                if not is_answer(event["type"], message):
                    continue
                future = self.waiting.pop(message.get("visible_to") or "", None)
                if future is not None and not future.done():
                    future.set_result((event["at"], message))


def is_answer(kind: str, message: dict[str, Any]) -> bool:
    """A message the bot sent the asker: through the response_url (new or replacing the clicked one), in the
    ack body (grammar errors), or Slack's own notice of a failed ack."""
    if kind in ("message_posted", "ephemeral_posted"):
        return message.get("source") in ("response_url", "ack", "slackbot")
    return kind == "message_updated" and bool(message.get("replaced"))


def is_error(message: dict[str, Any]) -> bool:
    if message.get("source") != "response_url" and not message.get("replaced"):
        return True  # an ack body (grammar error) or Slack's own failure notice
    blocks = message.get("blocks") or [{}]
    return str((blocks[0].get("text") or {}).get("text", "")).startswith(":warning:")


@dataclass
class Samples:
    ack_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def add(self, ack: float | None, answer: float | None, error: bool) -> None:
        if ack is not None:
            self.ack_ms.append(ack)
        if answer is not None:
            self.answer_ms.append(answer)
        self.errors += error


ANSWER_TIMEOUT = 30.0
Timed = tuple[float | None, float | None, dict[str, Any] | None]
"""ack ms (None: no ack), answer ms and the answer message (None: no answer in ``ANSWER_TIMEOUT``)."""


async def timed(answers: Answers, user: str, act: Awaitable[dict[str, Any]]) -> Timed:
    """Do ``act`` (a command or a click by ``user``) and wait for the answer it brings that user."""
    future = answers.expect(user)
    sent = time.time()
    result = await act
    if result["status"] != 200:
        answers.waiting.pop(user, None)
        return result["ack_ms"], None, None
    try:
        at, message = await asyncio.wait_for(future, ANSWER_TIMEOUT)
    except TimeoutError:
        return result["ack_ms"], None, None
    return result["ack_ms"], (at - sent) * 1000, message


async def one(client: WorkspaceClient, answers: Answers, text: str, user: str) -> Timed:
    """`/services text` as ``user``."""
    return await timed(answers, user, client.command(text, user=user))


async def click_next(client: WorkspaceClient, answers: Answers, message: dict[str, Any], user: str) -> Timed:
    """Next on ``message`` (an ephemeral list answer, replaced in place)."""
    return await timed(answers, user, client.click(message, "page_next", user=user))


async def sequential(client: WorkspaceClient, answers: Answers, mixes: list[str], repeat: int) -> dict[str, Samples]:
    """Each mix ``repeat`` times in a row, one user; `limit:40` is followed by a click on Next."""
    out: dict[str, Samples] = {}
    user = USERS[0]
    for mix in mixes:
        samples = out.setdefault(mix, Samples())
        for i in range(repeat):
            await client.reset()
            text = mix.format(name=NAMES[i % len(NAMES)], failed=FAILED[i % len(FAILED)])
            ack, answer, message = await one(client, answers, text, user)
            samples.add(ack, answer, message is None or is_error(message))
            if mix == "limit:40" and message is not None and not is_error(message):
                ack, answer, updated = await click_next(client, answers, message, user)
                out.setdefault("Next (page 2 of limit:40)", Samples()).add(
                    ack, answer, updated is None or is_error(updated)
                )
    return out


async def concurrent(client: WorkspaceClient, answers: Answers, mixes: list[str], width: int, rounds: int) -> Samples:
    """``rounds`` times: ``width`` users each send a command at the same moment (mixes rotating)."""
    samples = Samples()
    for r in range(rounds):
        await client.reset()
        texts = [
            mixes[(r + i) % len(mixes)].format(
                name=NAMES[(r * width + i) % len(NAMES)], failed=FAILED[(r * width + i) % len(FAILED)]
            )
            for i in range(width)
        ]
        results = await asyncio.gather(*(one(client, answers, t, USERS[i]) for i, t in enumerate(texts)))
        for ack, answer, message in results:
            samples.add(ack, answer, message is None or is_error(message))
    return samples


NAMES: list[str] = []
FAILED: list[str] = []
MIXES = ["failed", "unhealthy type:real-time", "summary", "show {name}", "show {failed}", "limit:40"]


def unique_names(emulator_url: str, count: int, status: str | None = None) -> list[str]:
    """Names that appear once in the fleet (of services in ``status``, when given), so `show <name>` is never
    ambiguous."""
    response = httpx.get(
        f"{emulator_url}/v1/{PROJECT}/services",
        params={"limit": 100_000},
        headers={"X-Auth-Token": TOKEN},
        timeout=60,
        trust_env=False,
    )
    response.raise_for_status()
    seen: dict[str, int] = {}
    wanted: set[str] = set()
    for service in response.json()["services"]:
        seen[service["service_name"]] = seen.get(service["service_name"], 0) + 1
        if status is None or service.get("status") == status:
            wanted.add(service["service_name"])
    names = [name for name, n in seen.items() if n == 1 and " " not in name and name in wanted]
    return names[:: max(1, len(names) // count)][:count]


def row(scenario: str, cache: str, latency: int, command: str, s: Samples) -> str:
    runs = max(len(s.ack_ms), len(s.answer_ms))
    if not s.answer_ms:
        return f"| {scenario} | {cache} | {latency} ms | `{command}` | {runs} | — | — | — | — | {s.errors} |"
    return (
        f"| {scenario} | {cache} | {latency} ms | `{command}` | {runs} | "
        f"{statistics.median(s.ack_ms):.1f} ms | {percentile(s.ack_ms, 99):.1f} ms | "
        f"{statistics.median(s.answer_ms):.0f} ms | {percentile(s.answer_ms, 99):.0f} ms | {s.errors} |"
    )


async def bench(args: argparse.Namespace, emulator_url: str, workspace: WorkspaceServer, logdir: Path) -> list[str]:
    rows: list[str] = []
    async with (
        WorkspaceClient(workspace.url) as client,
        httpx.AsyncClient(base_url=emulator_url + "/_emulator", trust_env=False, timeout=30) as faults,
    ):
        for cache in (5.0, 0.0):
            label = f"{cache:g} s" + (" (default)" if cache == 5.0 else "")
            bot, bot_url = start_bot(emulator_url, workspace, cache, not args.no_watch, logdir)
            answers = Answers(client)
            try:
                await client.set_app_url(bot_url + "/slack/events")
                await answers.start()
                await sequential(client, answers, ["failed"], 3)  # warm-up: connections, imports, first token
                for mix, samples in (await sequential(client, answers, MIXES, args.repeat)).items():
                    rows.append(row("one at a time", label, 0, mix, samples))
                    print(rows[-1], flush=True)
                samples = await concurrent(client, answers, MIXES, args.width, args.rounds)
                rows.append(row(f"{args.width} at once", label, 0, "rotating mixes", samples))
                print(rows[-1], flush=True)
                if cache == 0.0 and args.latency_ms:
                    (await faults.post("/faults", json={"latency_ms": args.latency_ms})).raise_for_status()
                    try:
                        for mix, samples in (await sequential(client, answers, MIXES, args.slow_repeat)).items():
                            rows.append(row("one at a time", label, args.latency_ms, mix, samples))
                            print(rows[-1], flush=True)
                        samples = await concurrent(client, answers, MIXES, args.width, args.slow_rounds)
                        rows.append(row(f"{args.width} at once", label, args.latency_ms, "rotating mixes", samples))
                        print(rows[-1], flush=True)
                        if args.failed_repeat:
                            runs = await sequential(client, answers, ["show {failed}"], args.failed_repeat)
                            shown = runs["show {failed}"]
                            rows.append(row("failed, many runs", label, args.latency_ms, "show {failed}", shown))
                            print(rows[-1], flush=True)
                    finally:
                        (await faults.post("/faults", json={"latency_ms": 0})).raise_for_status()
            finally:
                await answers.stop()
                stop(bot)
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--bot":
        run_bot(json.loads(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=50, help="runs of each command, one at a time")
    parser.add_argument("--width", type=int, default=10, help="commands sent at the same moment")
    parser.add_argument("--rounds", type=int, default=10, help="rounds of WIDTH commands at once")
    parser.add_argument("--latency-ms", type=int, default=200, help="added to every API request (0: skip)")
    parser.add_argument("--slow-repeat", type=int, default=10, help="runs of each command with added latency")
    parser.add_argument("--slow-rounds", type=int, default=5, help="rounds at once with added latency")
    parser.add_argument(
        "--failed-repeat", type=int, default=100, help="runs of `show <a failed service>` with added latency"
    )
    parser.add_argument("--no-watch", action="store_true", help="serve without the watcher (serve --no-watch)")
    args = parser.parse_args()
    python = f"{platform.python_implementation()} {platform.python_version()}"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"machine: {platform.machine()}, {cpus} CPUs, {python}; {args.services:,} services")
    started = time.monotonic()
    emulator, emulator_url = start_emulator(args.services, seed=args.seed)
    users = [UserSpec(id=u, name=f"bench{i}") for i, u in enumerate(USERS)]
    workspace = WorkspaceServer(WorkspaceSettings(users=users))
    try:
        NAMES.extend(unique_names(emulator_url, 100))
        FAILED.extend(unique_names(emulator_url, 100, status="failed"))
        workspace.start()
        with tempfile.TemporaryDirectory() as logdir:
            print(
                "| scenario | cache | API latency | command | runs | ack p50 | ack p99 | answer p50 | answer p99 "
                "| errors |"
            )
            print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
            asyncio.run(bench(args, emulator_url, workspace, Path(logdir)))
    finally:
        workspace.stop()
        stop(emulator)
    print(f"\n{time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
