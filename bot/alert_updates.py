"""Bringing a posted alert up to date in Slack: the first alert of a service shows its thread's state (resolved,
relapsed, where it stands) and who acknowledged it or any alert in its thread; a reply shows who acknowledged
it; a grouped alert shows who acknowledged the burst.

Used by delivery (after each reply in a thread) and by the Acknowledge button, so both render the same
message from the store, which holds what the message should say. A failed update is logged and changes
nothing stored: the next change or click renders it again, from the store.
"""

from __future__ import annotations

import logging

from services_bot.bot.alerts import alert_message, batch_metadata, grouped_message, metadata, updated_metadata
from services_bot.bot.slack_errors import NETWORK_ERRORS, failure_of
from services_bot.core.notifications import Acknowledgement
from services_bot.core.service_fields import ConsoleLink
from services_bot.core.store import Store
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


async def refresh_alert(
    store: Store, client: AsyncWebClient, channel: str, transition_id: int, console_link: ConsoleLink | None = None
) -> bool:
    """Re-render the message that carried this transition in ``channel``; True when Slack took the update."""
    posted = await store.thread_of_transition(channel, transition_id)
    t = await store.transition(transition_id)
    if posted is None or t is None or t.id is None:
        return False
    ts, _thread_ts = posted
    thread = await store.thread_rooted_at(channel, t.id)
    later = await store.thread_transitions(channel, t.target, t.service_id, t.id) if thread is not None else []
    acks = _once_each(await store.acknowledgements([t.id, *(x.id for x in later if x.id is not None)], channel))
    link = console_link(t.target, t.service_id) if console_link else None
    text, blocks = alert_message(t, channel=channel, later=later, acks=acks, console_url=link)
    meta = updated_metadata(t, later, acks) if (later or acks) else metadata(t)
    if not await _update(client, channel, ts, text=text, blocks=blocks, metadata=meta):
        return False
    if thread is not None:
        await store.set_alert_thread_resolved(channel, thread.root_ts, bool(later) and later[-1].to_status == "running")
    return True


async def refresh_grouped(store: Store, client: AsyncWebClient, channel: str, poll_id: str) -> bool:
    """Re-render a grouped alert with everyone who acknowledged any of its transitions (once each)."""
    transitions = await store.poll_transitions(poll_id, channel)
    ids = [t.id for t in transitions if t.id is not None]
    if not ids:
        return False
    posted = await store.thread_of_transition(channel, ids[0])
    if posted is None:
        return False
    acks = _once_each(await store.acknowledgements(ids, channel))
    text, blocks = grouped_message(poll_id, transitions, channel=channel, acks=acks)
    meta = batch_metadata(poll_id, transitions)
    meta["event_payload"]["acknowledged_by"] = ",".join(a.user for a in acks)
    return await _update(client, channel, posted[0], text=text, blocks=blocks, metadata=meta)


def _once_each(by_transition: dict[int, list[Acknowledgement]]) -> list[Acknowledgement]:
    """Everyone who acknowledged any of these transitions, once, at their first acknowledgement."""
    by_user: dict[str, Acknowledgement] = {}
    for acks in by_transition.values():
        for a in acks:
            if a.user not in by_user or a.at < by_user[a.user].at:
                by_user[a.user] = a
    return sorted(by_user.values(), key=lambda a: (a.at, a.user))


async def _update(client: AsyncWebClient, channel: str, ts: str, **message: object) -> bool:
    try:
        await client.chat_update(channel=channel, ts=ts, **message)
    except (SlackApiError, *NETWORK_ERRORS) as exc:
        log.warning("could not update an alert channel=%s error=%s", channel, failure_of(exc).describe())
        return False
    return True
