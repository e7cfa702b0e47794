"""Benchmark: time from a status change in the emulator to the alert message at the Slack stand-in.

The emulator (10 000 services, default workspace only, no churn) runs in its own process. The bot runs here as
``services-bot serve`` in a background thread (``BackgroundServe``: watcher + delivery, polling every 2 s,
default subscription on C0ALERTS, a fresh store in a temporary folder), and so does the local Slack stand-in
(``services_bot.workspace``).

One clock: ``time.time()`` of this process. A flip's start is read just before the ``POST
/_emulator/services/{id}/status`` call that makes a running service ``failed``; its end is the ``at`` stamp
of the stand-in's ``message_posted`` event for the alert (taken when the stand-in stored the message, in this
same process; the event feed is long-polled, so the feed's own delay does not count).

Single flips: one service at a time, each waiting for its alert, then a random pause of U(0, interval) before
the next, so a flip lands at a uniformly random phase of the watcher's poll cycle. Bursts: ``--burst`` services
flipped at once (concurrent control calls), timed until the messages at the stand-in cover all of them
(one grouped message, or two when the burst straddles a poll).

    python benchmarks/bench_alerts.py
    python benchmarks/bench_alerts.py --flips 60 --bursts 5 --burst 50 --services 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import platform
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services_bot.core.watcher import PollResult, Watcher  # noqa: E402 - after the path is set, so the script runs anywhere
from services_bot.workspace import WorkspaceClient, WorkspaceServer, WorkspaceSettings  # noqa: E402

from benchmarks.emulator_process import start_emulator  # noqa: E402
from services_bot.serve import BackgroundServe  # noqa: E402
from services_bot.wiring import local_settings  # noqa: E402

PROJECT, TOKEN = "emulator-project", "emulator-token"
ALERTS = "C0ALERTS"
SINGLE_EVENT = "modelarts_service_status_changed"
BATCH_EVENT = "modelarts_service_status_changed_batch"




@dataclass
class PollLog:
    """(start, end, mode) of every watcher poll, on the same clock; appended from the bot's thread."""

    polls: list[tuple[float, float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, watcher: Watcher) -> None:
        original = watcher.poll_once

        async def timed() -> PollResult:
            started = time.time()
            result = await original()
            mode = "full" if result.full else "incremental"
            with self.lock:
                self.polls.append((started, time.time(), mode))
            return result

        watcher.poll_once = timed  # type: ignore[method-assign]

    def catching(self, posted_at: float) -> tuple[float, float, str] | None:
        """The last poll that ended before the message was posted: the one that saw the change."""
        with self.lock:
            ended = [p for p in self.polls if p[1] <= posted_at]
        return ended[-1] if ended else None


class Feed:
    """Reads the stand-in's event feed and hands each alert-channel bot message to whoever waits for it."""

    def __init__(self, workspace: WorkspaceClient) -> None:
        self.workspace = workspace
        self.after = 0
        self.singles: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.batches: list[dict[str, Any]] = []
        self.batch_seen = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.after = (await self.workspace.events(after=0, wait=0))["last"]
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            answer = await self.workspace.events(after=self.after, wait=10)
            self.after = answer["last"]
            for event in answer["events"]:
                if event["type"] != "message_posted" or event.get("channel") != ALERTS:
                    continue
                message = event["message"]
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                seen = {"at": event["at"], "posted_at": message.get("posted_at"), "message": message}
                if meta.get("event_type") == SINGLE_EVENT:
                    future = self.singles.setdefault(payload["service_id"], asyncio.Future())
                    if not future.done():
                        future.set_result(seen)
                elif meta.get("event_type") == BATCH_EVENT:
                    self.batches.append({**seen, "count": int(payload.get("count", 0))})
                    self.batch_seen.set()

    def expect(self, service_id: str) -> asyncio.Future[dict[str, Any]]:
        return self.singles.setdefault(service_id, asyncio.Future())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


@dataclass
class Flip:
    latency: float
    wait: float | None = None
    poll: float | None = None
    delivery: float | None = None
    mode: str | None = None


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the smallest value with at least ``q`` of the samples at or below it)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


async def running_ids(url: str, count: int, rng: random.Random) -> list[str]:
    async with httpx.AsyncClient(timeout=60) as http:
        answer = await http.get(
            f"{url}/v1/{PROJECT}/services",
            params={"status": "running", "limit": 1_000_000},
            headers={"X-Auth-Token": TOKEN},
        )
        answer.raise_for_status()
    ids = [row["service_id"] for row in answer.json()["services"]]
    if len(ids) < count:
        raise RuntimeError(f"only {len(ids)} running services, {count} needed")
    return rng.sample(ids, count)


async def flip(control: httpx.AsyncClient, service_id: str, note: str) -> None:
    answer = await control.post(f"/services/{service_id}/status", json={"status": "failed", "error_msg": note})
    answer.raise_for_status()


async def run(args: argparse.Namespace) -> tuple[list[Flip], list[dict[str, Any]], dict[str, Any]]:
    rng = random.Random(args.seed)
    proc, url = start_emulator(args.services)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="bench-alerts-") as tmp,
            WorkspaceServer(WorkspaceSettings()) as workspace_server,
        ):
            settings = local_settings(
                url,
                PROJECT,
                TOKEN,
                slack_bot_token=workspace_server.settings.bot_token,
                slack_signing_secret=workspace_server.settings.signing_secret,
                slack_app_token=None,
                slack_api_url=workspace_server.api_url,
                services_bot_port=0,
                services_bot_poll_seconds=args.interval,
                services_bot_alert_channel=ALERTS,
                services_bot_db=Path(tmp) / "store.db",
            )
            polls = PollLog()
            with BackgroundServe(settings) as bot:
                watcher = bot.runtime.watcher
                assert watcher is not None
                polls.attach(watcher)
                deadline = time.monotonic() + 120
                while watcher.polls < 2 or watcher.last_success_at is None:  # baseline and one steady poll
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the watcher did not baseline: {watcher.last_error}")
                    await asyncio.sleep(0.05)
                ids = await running_ids(url, args.flips + args.bursts * args.burst, rng)
                async with (
                    WorkspaceClient(workspace_server.url) as workspace,
                    httpx.AsyncClient(base_url=url + "/_emulator", timeout=30) as control,
                ):
                    feed = Feed(workspace)
                    await feed.start()
                    try:
                        flips = await single_flips(args, rng, ids[: args.flips], control, feed, polls)
                        bursts = await burst_flips(args, rng, ids[args.flips :], control, feed)
                    finally:
                        await feed.stop()
                info = {"polls": len(polls.polls), "full_polls": sum(1 for p in polls.polls if p[2] == "full")}
                return flips, bursts, info
    finally:
        proc.terminate()
        proc.wait()


async def single_flips(
    args: argparse.Namespace,
    rng: random.Random,
    ids: list[str],
    control: httpx.AsyncClient,
    feed: Feed,
    polls: PollLog,
) -> list[Flip]:
    out: list[Flip] = []
    for number, service_id in enumerate(ids, 1):
        await asyncio.sleep(rng.uniform(0, args.interval))
        alert = feed.expect(service_id)
        started = time.time()
        await flip(control, service_id, f"bench flip {number}")
        seen = await asyncio.wait_for(alert, args.timeout)
        result = Flip(latency=seen["at"] - started)
        caught = polls.catching(seen["at"])
        if caught is not None:
            result.wait, result.poll = caught[0] - started, caught[1] - caught[0]
            result.delivery, result.mode = seen["at"] - caught[1], caught[2]
        out.append(result)
        if args.verbose:
            print(f"flip {number:3d}: {result.latency * 1000:6.0f} ms ({result.mode})", file=sys.stderr)
    return out


async def burst_flips(
    args: argparse.Namespace, rng: random.Random, ids: list[str], control: httpx.AsyncClient, feed: Feed
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for number in range(args.bursts):
        group = ids[number * args.burst : (number + 1) * args.burst]
        await asyncio.sleep(args.interval + rng.uniform(0, args.interval))  # earlier alerts settled, random phase
        for service_id in group:
            feed.expect(service_id)
        first_batch = len(feed.batches)
        started = time.time()
        await asyncio.gather(*(flip(control, s, f"bench burst {number}") for s in group))
        sent = time.time() - started
        deadline = time.monotonic() + args.timeout
        while True:
            batches = feed.batches[first_batch:]
            singles = [f.result() for s in group if (f := feed.singles[s]).done()]
            covered = sum(b["count"] for b in batches) + len(singles)
            if covered >= len(group):
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"burst {number}: only {covered} of {len(group)} services reached the stand-in")
            feed.batch_seen.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(feed.batch_seen.wait(), 0.05)
        moments = [b["at"] for b in batches] + [s["at"] for s in singles]
        out.append(
            {
                "latency": max(moments) - started,
                "first": min(moments) - started,
                "messages": len(moments),
                "grouped": len(batches),
                "sent": sent,
            }
        )
        if args.verbose:
            print(f"burst {number}: {out[-1]}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--interval", type=float, default=2.0, help="SERVICES_BOT_POLL_SECONDS")
    parser.add_argument("--flips", type=int, default=60, help="single flips, one at a time")
    parser.add_argument("--bursts", type=int, default=5, help="bursts of --burst flips at once")
    parser.add_argument("--burst", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for one alert")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()

    flips, bursts, info = asyncio.run(run(args))
    aim = args.interval + 1.0
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    print(f"\n### Status change → alert at the stand-in ({args.services:,} services, poll every {args.interval:g} s)\n")
    print("| what | samples | p50 | p90 | p99 | max | aim (p99) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    latencies = [f.latency for f in flips]
    verdict = "met" if percentile(latencies, 99) < aim else "missed"
    print(
        f"| one service flipped (uniform phase) | {len(flips)} | {percentile(latencies, 50):.2f} s "
        f"| {percentile(latencies, 90):.2f} s | {percentile(latencies, 99):.2f} s | {max(latencies):.2f} s "
        f"| < {aim:g} s: {verdict} |"
    )
    if bursts:
        done = [b["latency"] for b in bursts]
        print(
            f"| {args.burst} services flipped at once, until all are in messages | {len(bursts)} "
            f"| {percentile(done, 50):.2f} s | {percentile(done, 90):.2f} s | {percentile(done, 99):.2f} s "
            f"| {max(done):.2f} s | — |"
        )
    parts = [f for f in flips if f.wait is not None]
    if parts:
        print("\nWhere a single flip's time goes (median; the poll that caught it is the last one ended before")
        print("the message):\n")
        print("| wait for the next poll | that poll | outbox → stand-in | polls that were full listings |")
        print("|---:|---:|---:|---:|")
        wait = percentile([f.wait or 0.0 for f in parts], 50)
        poll = percentile([f.poll or 0.0 for f in parts], 50)
        delivery = percentile([f.delivery or 0.0 for f in parts], 50)
        full = sum(1 for f in parts if f.mode == "full")
        print(
            f"| {wait * 1000:.0f} ms | {poll * 1000:.0f} ms | {delivery * 1000:.0f} ms "
            f"| {full} of {len(parts)} flips; {info['full_polls']} of {info['polls']} polls |"
        )
    if bursts:
        print("\n| burst | flip calls took | first message | all covered | messages (grouped) |")
        print("|---:|---:|---:|---:|---:|")
        for number, b in enumerate(bursts, 1):
            print(
                f"| {number} | {b['sent'] * 1000:.0f} ms | {b['first']:.2f} s | {b['latency']:.2f} s "
                f"| {b['messages']} ({b['grouped']}) |"
            )


if __name__ == "__main__":
    main()
