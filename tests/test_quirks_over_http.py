"""Every quirk the emulator can switch on is survived end to end: same services, same values."""

from __future__ import annotations

import pytest
from services_bot.core.client import ListParams
from services_bot.emulator import EmulatorServer

from tests.conftest import Control, queries_for, v1_client

QUIRKS = [
    "numbers_as_strings",
    "config_as_string",
    "workspace_id_as_number",
    "publish_at_seconds",
    "float_numbers",
    "sparse",
    "missing_count",
    "unknown_fields",
    "sample_collection_bool",
]


async def snapshot(server: EmulatorServer) -> dict[str, tuple]:
    async with queries_for(server) as queries:
        client = v1_client(queries)
        services = await client.list_all(ListParams())
        first = await client.get_service(sorted(s.service_id for s in services)[0])
    rows = {
        s.service_id: (
            s.status,
            s.workspace_id,
            s.invocation_times,
            s.failed_times,
            s.publish_at and s.publish_at.date(),
        )
        for s in services
    }
    rows["__detail__"] = (first.status, [c.model_id for c in first.config or []], first.progress)
    return rows


@pytest.mark.parametrize("quirk", QUIRKS)
async def test_quirk_is_survived(emulator_server: EmulatorServer, control: Control, quirk: str) -> None:
    baseline = await snapshot(emulator_server)
    control.quirks(**{quirk: True})
    quirky = await snapshot(emulator_server)
    assert quirky.keys() == baseline.keys()
    if quirk == "sparse":  # optional fields vanish, but identity and status remain
        assert {k: v[0] for k, v in quirky.items()} == {k: v[0] for k, v in baseline.items()}
    else:
        assert quirky == baseline


async def test_unknown_status_is_shown_not_rejected(emulator_server: EmulatorServer, control: Control) -> None:
    row = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)["services"][0]
    control.set_status(row["service_id"], "upgrading")
    async with queries_for(emulator_server) as queries:
        services = await v1_client(queries).list_all(ListParams())
        detail = await v1_client(queries).get_service(row["service_id"])
    assert {s.service_id: s.status for s in services}[row["service_id"]] == "upgrading"
    assert detail.status == "upgrading"


async def test_unknown_fields_are_kept_for_json_output(emulator_server: EmulatorServer, control: Control) -> None:
    """``ask --json`` lists with ``every_field``: fields no documented table has are kept for it."""
    control.quirks(unknown_fields=True)
    async with queries_for(emulator_server) as queries:
        services = await v1_client(queries).list_all(ListParams(every_field=True))
    assert any(s.extra_fields() for s in services)
