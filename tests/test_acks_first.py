"""Answers wait for the acks of the requests that arrived with them (``bot.acks_first``), on a real event loop."""

from __future__ import annotations

import asyncio

from services_bot.bot.acks_first import AcksFirst


async def _request(acks: AcksFirst, order: list[str], name: str, seconds: float = 0.0) -> None:
    """What ``POST /slack/events`` does: counts itself in flight from arrival to ack (``seconds``: an ack that
    awaits, e.g. the rest of its body)."""
    with acks.acking():
        if seconds:
            await asyncio.sleep(seconds)
        order.append(name)


async def _answer(acks: AcksFirst, order: list[str]) -> None:
    await acks.turn()
    order.append("answer")


async def test_an_answer_waits_while_an_ack_is_in_flight() -> None:
    acks, order = AcksFirst(), []
    slow = asyncio.create_task(_request(acks, order, "slow ack", 0.05))
    await asyncio.sleep(0)
    assert acks.in_flight == 1
    await asyncio.gather(_answer(acks, order), slow)
    assert order == ["slow ack", "answer"]
    assert acks.in_flight == 0


async def test_requests_read_from_the_socket_after_the_answer_began_are_acked_first() -> None:
    """As uvicorn does it: a reader callback runs on a later pass of the loop and makes the request a task,
    which starts on the pass after. The answer, created before either, still comes after both acks."""
    acks, order = AcksFirst(), []
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[None]] = []
    answer = asyncio.create_task(_answer(acks, order))

    def data_received(name: str) -> None:
        tasks.append(asyncio.create_task(_request(acks, order, name)))

    loop.call_soon(data_received, "ack read with the answer")
    loop.call_soon(lambda: loop.call_soon(data_received, "ack read one pass later"))
    await answer
    await asyncio.gather(*tasks)
    assert order == ["ack read with the answer", "ack read one pass later", "answer"]


async def test_with_nothing_to_ack_an_answer_starts_at_once() -> None:
    acks, order = AcksFirst(), []
    await asyncio.wait_for(_answer(acks, order), 0.5)
    assert order == ["answer"]


async def test_acks_that_never_stop_coming_do_not_starve_an_answer() -> None:
    """A request that holds its ack (a client sending its body slowly) or a stream of them: the answer still
    starts, after at most ``longest`` seconds."""
    acks, order = AcksFirst(), []
    stuck = asyncio.create_task(_request(acks, order, "stuck ack", 30))
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await acks.turn(longest=0.2)
    waited = loop.time() - started
    assert acks.in_flight == 1 and 0.15 < waited < 5, waited
    stuck.cancel()
    await asyncio.gather(stuck, return_exceptions=True)
    assert acks.in_flight == 0, "a request cut off still stops counting"
