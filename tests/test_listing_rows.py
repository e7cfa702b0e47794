"""What a listed row keeps (issue 17): the fast page reading must not lose a field a user sees.

List rows are read by pydantic-core alone when their values are as documented and by the lenient readers only
for a quirk, and rows of one shape share their fields-set. These tests list over the emulator and check the rows
against the emulator's own answer: `ask --json` still shows every field the API sent, MCP `list_services` every
field of its full rows, and each quirk that changes a row's encoding still reads the same values.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from mcp import Client
from services_bot.core.client import ListParams
from services_bot.emulator import EmulatorServer

from tests.conftest import Control, queries_for, v1_client
from tests.test_cli import assert_no_traceback, env_for, run
from tests.test_mcp_tools import server_for

TIMES = ("publish_at", "update_time", "transition_at", "operation_time", "due_time", "start_time", "finished_time")
COUNTS = ("progress", "invocation_times", "failed_times", "shared_count")
FLAGS = ("is_shared", "is_free", "is_opened_sample_collection")


def raw_rows(server: EmulatorServer, ctl: Control) -> dict[str, dict[str, Any]]:
    """The emulator's list rows by id, as it encodes them (the oracle)."""
    raw = ctl.list_raw(server.settings.project_id, server.settings.token)["services"]
    return {row["service_id"]: row for row in raw}


def as_time(value: Any) -> datetime:
    number = float(value)
    return datetime.fromtimestamp(number / 1000 if number >= 10**11 else number, UTC)


def assert_same_row(shown: dict[str, Any], raw: dict[str, Any]) -> None:
    """Every field the API sent with a value is shown, with that value in the product's reading."""
    sent = {k for k, v in raw.items() if v not in (None, "", [], {})}
    assert sent <= set(shown), f"fields lost from {raw['service_id']}: {sorted(sent - set(shown))}"
    for name in sent:
        if name in TIMES:
            assert datetime.fromisoformat(shown[name].replace("Z", "+00:00")) == as_time(raw[name]), name
        elif name in COUNTS:
            assert shown[name] == int(float(raw[name])), name
        elif name in FLAGS:
            assert shown[name] is (str(raw[name]).lower() == "true"), name
        elif isinstance(raw[name], str):
            assert shown[name] == raw[name], name


def test_ask_json_shows_every_field_the_list_sent(emulator_server: EmulatorServer, control: Control) -> None:
    rows = raw_rows(emulator_server, control)
    proc = run(["ask", "--json", "limit:1000"], env_for(emulator_server))
    assert_no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)["services"]
    assert len(shown) > 50
    for service in shown:
        assert_same_row(service, rows[service["service_id"]])


async def test_mcp_full_rows_carry_every_field_they_name(emulator_server: EmulatorServer, control: Control) -> None:
    rows = raw_rows(emulator_server, control)
    async with Client(server_for(emulator_server)) as client:
        result = await client.call_tool("list_services", {"detail": "full", "limit": 200})
    page = result.structured_content
    assert page is not None and len(page["services"]) > 50
    for service in page["services"]:
        raw = rows[service["service_id"]]
        for name in ("service_name", "status", "infer_type", "workspace_id", "description", "owner"):
            assert service.get(name) == (raw.get(name) or None), name  # an empty value is left out
        for name in ("transition_at", "publish_at"):
            assert datetime.fromisoformat(service[name].replace("Z", "+00:00")) == as_time(raw[name]), name
        for name in ("invocation_times", "failed_times", "shared_count", "is_shared"):
            assert service.get(name) == raw.get(name), name


@pytest.mark.parametrize("every_field", [False, True], ids=["listed", "every-field"])
@pytest.mark.parametrize(
    "quirk",
    ["numbers_as_strings", "float_numbers", "workspace_id_as_number", "publish_at_seconds", "sample_collection_bool"],
)
async def test_quirky_rows_read_as_the_documented_ones(
    emulator_server: EmulatorServer, control: Control, quirk: str, every_field: bool
) -> None:
    """The same fleet listed plain and with a quirk that changes how rows are encoded: the same services, in
    the listed rows answers read and in the rows that keep every field (``ask --json``)."""
    params = ListParams(every_field=every_field)
    async with queries_for(emulator_server) as queries:
        plain = {s.service_id: s for s in await v1_client(queries).list_all(params)}
        control.quirks(**{quirk: True})
        quirky = {s.service_id: s for s in await v1_client(queries).list_all(params)}
    assert quirky.keys() == plain.keys()
    flags = FLAGS if every_field else ("is_shared",)  # the listed rows keep no field an answer does not show
    fields = ("service_name", "status", "infer_type", "workspace_id", "transition_at", *COUNTS, *flags)
    for service_id, row in quirky.items():
        for name in fields:
            assert getattr(row, name) == getattr(plain[service_id], name), (quirk, name)
    if quirk == "publish_at_seconds":  # read as seconds, and said so (Q02)
        row = next(iter(quirky.values()))
        assert row.publish_at == plain[row.service_id].publish_at.replace(microsecond=0)
        assert "publish_at was seconds-sized; read as seconds" in row.notes
    else:
        assert all(row.publish_at == plain[service_id].publish_at for service_id, row in quirky.items())


async def test_a_failure_cause_on_one_row_is_not_claimed_by_its_neighbours(
    emulator_server: EmulatorServer, control: Control
) -> None:
    """Rows of one shape share the set of fields they were given; a row given a failure cause later gets its own,
    so its neighbours still dump as the API sent them."""
    async with queries_for(emulator_server) as queries:
        first, second = (await v1_client(queries).list_all(ListParams()))[:2]
    sent = second.model_dump(exclude_unset=True)
    first.error_msg = "CrashLoopBackOff"
    assert first.model_dump(exclude_unset=True)["error_msg"] == "CrashLoopBackOff"
    assert second.model_dump(exclude_unset=True) == sent and "error_msg" not in sent
