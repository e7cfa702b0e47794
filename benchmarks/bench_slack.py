"""Benchmark: `/services` slash command ack latency and time to answer against 10 000 emulated services.

Three processes, as in production where Slack, the bot and ModelArts are apart: the emulator (the API) and
`services-bot serve` (the bot, HTTP mode) each run in their own process; the local Slack stand-in
(`services_bot.workspace`) and this client run here. The stand-in signs each command, POSTs it to the bot and
times the HTTP answer (`ack_ms`: from sending the signed request to the bot's 200). The bot then answers
through the command's response_url; time to answer runs from this client's call to `/_workspace/command`
until the stand-in stores that answer (the `at` stamp of its `ephemeral_posted` / `message_updated` event:
`time.time()` in this same process, read from the event feed so that long-poll delays do not count).

Commands at once are timed on the wire instead (``--ack-via wire``, the default): the stand-in signs them
without sending them (``send: false``) and ``wire_sender.py``, a process of its own, sends them together and
times each from its bytes' send to its response's last byte, so neither the stand-in's nor this client's CPU
is inside an ack; their answers are timed from the sender's send. Each such row also gives the bot process's
CPU time per command (``/proc``). ``--bot-python NAME=PYTHON`` (repeatable, with ``--alternate``) runs the bots
of other checkouts' venvs in turn in one run, to compare versions on the same noise; ``floor`` in place of a
PYTHON serves a bare Starlette endpoint instead of the bot.

Rows: each command mix N times in a row with the bot's default cache (5 s, as in production) and with no
cache (the cold path); 10 commands at once (one per user, mixes rotating); and with every API request delayed
(`POST /_emulator/faults {"latency_ms": ...}`), to show the ack does not wait for ModelArts. `show {failed}`
shows a failed service, which adds its latest abnormal events and last update (two more requests, sent
together: issue 15); with the latency it runs ``--failed-repeat`` times for a p99 of its own.

    python benchmarks/bench_slack.py
    python benchmarks/bench_slack.py --repeat 100 --latency-ms 200
    python benchmarks/bench_slack.py --latency-ms 0 --at-once-only --at-once help=help \
        --bot-python base=/tmp/acks-base/.venv/bin/python --bot-python this=.venv/bin/python --alternate 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
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
A_BOT = sys.argv[1:2] in (["--bot"], ["--floor"])
"""This script started as a bot by ``--bot-python``: it runs the services_bot its interpreter has installed
(another checkout's), so this checkout goes on the path only after that one is imported."""
if not A_BOT:
    sys.path.insert(0, str(ROOT))

from services_bot.workspace import (  # noqa: E402 - after the path is set, so the script runs from anywhere
    UserSpec,
    WorkspaceClient,
    WorkspaceServer,
    WorkspaceSettings,
)

if A_BOT:
    sys.path.append(str(ROOT))

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

    print(f"bot code: {Path(sys.modules['services_bot.serve'].__file__ or '').parents[1]}", flush=True)

    if config.get("uvloop"):  # an A/B knob: the event loop policy asyncio.run then follows
        import uvloop

        uvloop.install()

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


def run_floor(config: dict[str, Any]) -> None:
    """The floor under any bot: the same uvicorn and Starlette as ``serve``, and one endpoint that reads the body
    and answers 200 with a small JSON body (so nothing waits for an answer), verifying nothing."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from services_bot.background import listen, uvicorn_config

    async def events(request: Request) -> JSONResponse:
        await request.body()
        return JSONResponse({"text": "floor"})

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"watcher": {"last_poll_age_seconds": 0}})

    app = Starlette(routes=[Route("/slack/events", events, methods=["POST"]), Route("/healthz", healthz)])
    uvicorn.Server(uvicorn_config(app, lifespan="off")).run(sockets=[listen("127.0.0.1", config["port"])])


BOT_RUNS = itertools.count(1)


def start_bot(
    emulator_url: str, workspace: WorkspaceServer, cache: float, watch: bool, logdir: Path, python: str
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    run = next(BOT_RUNS)
    log = logdir / f"bot-{run}-cache{cache:g}.log"
    config = {
        "emulator": emulator_url,
        "bot_token": workspace.settings.bot_token,
        "signing_secret": workspace.settings.signing_secret,
        "api_url": workspace.api_url,
        "cache": cache,
        "port": port,
        "watch": watch,
        "db": str(logdir / f"store-{run}-cache{cache:g}.db"),
    }
    python, *flags = python.split("+")
    config["uvloop"] = "uvloop" in flags
    floor = python == "floor" or "floor" in flags
    launcher = [sys.executable if python == "floor" else python, __file__, "--floor" if floor else "--bot"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*launcher, json.dumps(config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    wait_healthy(f"{url}/healthz", proc, "the bot", log)
    if watch:
        wait_first_poll(url, 60)
    return proc, url


def wait_first_poll(url: str, seconds: float) -> None:
    """Until the bot's watcher has finished its first (full) poll, so measuring does not start inside it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        health = httpx.get(f"{url}/healthz", timeout=5, trust_env=False).json()
        if (health.get("watcher") or {}).get("last_poll_age_seconds") is not None:
            return
        time.sleep(0.2)


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
    if message.get("source") == "slackbot":
        return True  # Slack's own notice of a failed ack
    blocks = message.get("blocks") or [{}]
    return str((blocks[0].get("text") or {}).get("text", "")).startswith(":warning:")


@dataclass
class Samples:
    ack_ms: list[float] = field(default_factory=list)
    answer_ms: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_ms: float | None = None
    """The bot process's CPU time (user + system) over the row, per command: acks, answers and the watcher's
    polls meanwhile."""

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


class WireSender:
    """``wire_sender.py`` in its own process: sends a round of signed requests at once and times each ack from
    its bytes' send to its response's last byte, so neither the stand-in's nor this client's CPU is inside."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "wire_sender.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def send(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(requests) + "\n")
        self.proc.stdin.flush()
        line = await asyncio.to_thread(self.proc.stdout.readline)
        if not line:
            raise RuntimeError("the wire sender stopped")
        return json.loads(line)  # type: ignore[no-any-return]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


async def over_the_wire(
    client: WorkspaceClient, answers: Answers, sender: WireSender, texts: list[str]
) -> list[tuple[float | None, float | None, bool]]:
    """The stand-in signs each command without sending it; the wire sender sends them all at once; the
    answers still arrive at the stand-in through their response_urls. An ack that carries the answer (help,
    a grammar error) has no answer time. Returns ack ms, answer ms and whether it failed."""
    prepared = [await client.command(t, user=USERS[i], send=False) for i, t in enumerate(texts)]
    futures = [answers.expect(USERS[i]) for i in range(len(texts))]
    sent = await sender.send([p["request"] for p in prepared])
    out: list[tuple[float | None, float | None, bool]] = []
    for i, result in enumerate(sent):
        if result["status"] != 200 or result["ack_body"]:
            answers.waiting.pop(USERS[i], None)
            out.append((result["ack_ms"], None, result["status"] != 200))
            continue
        try:
            at, message = await asyncio.wait_for(futures[i], ANSWER_TIMEOUT)
        except TimeoutError:
            out.append((result["ack_ms"], None, True))
            continue
        out.append((result["ack_ms"], (at - result["sent_at"]) * 1000, is_error(message)))
    return out


async def concurrent(
    client: WorkspaceClient, answers: Answers, mixes: list[str], width: int, rounds: int, sender: WireSender | None
) -> Samples:
    """``rounds`` times: ``width`` users each send a command at the same moment (mixes rotating), from the wire
    sender or (``sender`` None) from the stand-in itself."""
    samples = Samples()
    for r in range(rounds):
        await client.reset()
        texts = [
            mixes[(r + i) % len(mixes)].format(
                name=NAMES[(r * width + i) % len(NAMES)], failed=FAILED[(r * width + i) % len(FAILED)]
            )
            for i in range(width)
        ]
        if sender is not None:
            for ack, answer, failed in await over_the_wire(client, answers, sender, texts):
                samples.add(ack, answer, failed)
            continue
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def row(scenario: str, cache: str, latency: int, command: str, s: Samples) -> str:
    runs = max(len(s.ack_ms), len(s.answer_ms))
    acks = (
        f"{statistics.median(s.ack_ms):.1f} ms | {percentile(s.ack_ms, 99):.1f} ms" if s.ack_ms else "— | —"
    )
    answers = (
        f"{statistics.median(s.answer_ms):.0f} ms | {percentile(s.answer_ms, 99):.0f} ms" if s.answer_ms else "— | —"
    )
    cpu = f"{s.cpu_ms:.1f} ms" if s.cpu_ms is not None else "—"
    return f"| {scenario} | {cache} | {latency} ms | `{command}` | {runs} | {acks} | {answers} | {cpu} | {s.errors} |"


def merged(runs: list[Samples]) -> Samples:
    out = Samples()
    for s in runs:
        out.ack_ms += s.ack_ms
        out.answer_ms += s.answer_ms
        out.errors += s.errors
    cpus = [s.cpu_ms for s in runs if s.cpu_ms is not None]
    out.cpu_ms = statistics.mean(cpus) if cpus else None
    return out


async def bench(args: argparse.Namespace, emulator_url: str, workspace: WorkspaceServer, logdir: Path) -> list[str]:
    """Per cache setting: each bot (``--bot-python``) in turn, ``--alternate`` times, so that versions compared
    in one run share the machine's noise; the rows "at once" of all turns are merged per bot at the end."""
    rows: list[str] = []
    bots = [tuple(b.split("=", 1)) if "=" in b else (b, b) for b in args.bot_python] or [("", sys.executable)]
    at_once = {name: mixes.split(",") for name, mixes in (m.split("=", 1) for m in args.at_once)}
    sender = WireSender() if args.ack_via == "wire" else None
    totals: dict[tuple[str, str, str], list[Samples]] = {}
    async with (
        WorkspaceClient(workspace.url) as client,
        httpx.AsyncClient(base_url=emulator_url + "/_emulator", trust_env=False, timeout=30) as faults,
    ):
        try:
            for cache in args.caches:
                label = f"{cache:g} s" + (" (default)" if cache == 5.0 else "")
                for turn in range(args.alternate):
                    for bot_name, python in bots:
                        tag = f"{bot_name}: " if bot_name else ""
                        rows += await one_bot(
                            args, client, faults, sender, (python, tag), cache, label, turn, at_once, totals,
                            emulator_url, workspace, logdir,
                        )
        finally:
            if sender is not None:
                sender.stop()
    if args.alternate > 1:
        print("\nmerged over the turns:")
        for (tag, label, name), runs in totals.items():
            rows.append(row(f"{tag}{args.width} at once", label, 0, name, merged(runs)))
            print(rows[-1], flush=True)
    return rows


async def one_bot(
    args: argparse.Namespace,
    client: WorkspaceClient,
    faults: httpx.AsyncClient,
    sender: WireSender | None,
    bot_id: tuple[str, str],
    cache: float,
    label: str,
    turn: int,
    at_once: dict[str, list[str]],
    totals: dict[tuple[str, str, str], list[Samples]],
    emulator_url: str,
    workspace: WorkspaceServer,
    logdir: Path,
) -> list[str]:
    python, tag = bot_id
    rows: list[str] = []
    bot, bot_url = start_bot(emulator_url, workspace, cache, not args.no_watch, logdir, python)
    answers = Answers(client)
    try:
        await client.set_app_url(bot_url + "/slack/events")
        await answers.start()
        await sequential(client, answers, ["failed"], 3)  # warm-up: connections, imports, first token
        if not args.at_once_only and turn == 0:
            for mix, samples in (await sequential(client, answers, MIXES, args.repeat)).items():
                rows.append(row(f"{tag}one at a time", label, 0, mix, samples))
                print(rows[-1], flush=True)
        for name, mixes in at_once.items():
            cpu_before = cpu_seconds(bot.pid)
            samples = await concurrent(client, answers, mixes, args.width, args.rounds, sender)
            samples.cpu_ms = (cpu_seconds(bot.pid) - cpu_before) * 1000 / (args.width * args.rounds)
            totals.setdefault((tag, label, name), []).append(samples)
            rows.append(row(f"{tag}{args.width} at once", label, 0, name, samples))
            print(rows[-1], flush=True)
        if cache == 0.0 and args.latency_ms and not args.at_once_only and turn == 0:
            (await faults.post("/faults", json={"latency_ms": args.latency_ms})).raise_for_status()
            try:
                for mix, samples in (await sequential(client, answers, MIXES, args.slow_repeat)).items():
                    rows.append(row(f"{tag}one at a time", label, args.latency_ms, mix, samples))
                    print(rows[-1], flush=True)
                samples = await concurrent(client, answers, MIXES, args.width, args.slow_rounds, sender)
                rows.append(row(f"{tag}{args.width} at once", label, args.latency_ms, "rotating mixes", samples))
                print(rows[-1], flush=True)
                if args.failed_repeat:
                    runs = await sequential(client, answers, ["show {failed}"], args.failed_repeat)
                    shown = runs["show {failed}"]
                    rows.append(row(f"{tag}failed, many runs", label, args.latency_ms, "show {failed}", shown))
                    print(rows[-1], flush=True)
            finally:
                (await faults.post("/faults", json={"latency_ms": 0})).raise_for_status()
    finally:
        await answers.stop()
        stop(bot)
    return rows


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] in ("--bot", "--floor"):
        (run_bot if sys.argv[1] == "--bot" else run_floor)(json.loads(sys.argv[2]))
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
    parser.add_argument(
        "--ack-via",
        choices=("wire", "standin"),
        default="wire",
        help="who sends the commands at once: a sender process timing on the wire (default), or the stand-in "
        "itself (the measurement before issue 17, with the stand-in's own CPU inside each ack)",
    )
    parser.add_argument(
        "--at-once",
        action="append",
        default=[],
        metavar="NAME=MIX,MIX",
        help="a row of commands at once (repeatable; default: rotating mixes=" + ",".join(MIXES) + ")",
    )
    parser.add_argument("--at-once-only", action="store_true", help="only the rows at once (after a warm-up)")
    parser.add_argument(
        "--caches", type=lambda v: [float(c) for c in v.split(",")], default=[5.0, 0.0], help="e.g. 5,0"
    )
    parser.add_argument(
        "--bot-python",
        action="append",
        default=[],
        metavar="NAME=PYTHON",
        help="run the bot with this interpreter (another checkout's venv); repeat to compare versions in one run; "
        "PYTHON `floor` or PYTHON+floor: a bare Starlette endpoint in place of the bot (use with --at-once "
        "help=help); PYTHON+uvloop: that bot on uvloop",
    )
    parser.add_argument("--alternate", type=int, default=1, help="turns of each bot, alternating")
    args = parser.parse_args()
    args.at_once = args.at_once or ["rotating mixes=" + ",".join(MIXES)]
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
                "| bot CPU per command | errors |"
            )
            print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|", flush=True)
            asyncio.run(bench(args, emulator_url, workspace, Path(logdir)))
    finally:
        workspace.stop()
        stop(emulator)
    print(f"\n{time.monotonic() - started:.0f} s in all")


if __name__ == "__main__":
    main()
