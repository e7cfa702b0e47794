"""Interoperability: clients we did not write drive the server over stdio and Streamable HTTP: the official
TypeScript SDK clients (1.x and 2.x) and the official Python SDK's 1.x client (the product uses 2.x).

``tests/interop/client.mjs`` and ``tests/interop/client_mcp1.py`` list and call every tool, validate each
structured result against the tool's output schema (ajv, which the TypeScript SDK uses; jsonschema, after the
1.x session's own check), page through ``list_services`` reading only the text, and make a model's usual
mistakes; these tests judge their reports alike. They skip, saying why, where Node, the npm packages or the
1.x venv are missing (``.ci/run`` installs them: ``npm ci`` in ``tests/interop``, and ``tests/interop/py-mcp1``
from ``requirements-mcp1.txt``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from services_bot.core.notifications import Transition
from services_bot.core.store import Store
from services_bot.emulator import EmulatorServer

from tests.conftest import Control

INTEROP = Path(__file__).parent / "interop"
NODE = shutil.which("node")
PYTHON_MCP1 = INTEROP / "py-mcp1" / "bin" / "python"
TOOLS = {
    "list_services", "get_service", "summarize_services", "list_transitions", "list_targets",
    "get_service_events", "get_service_load",
}  # fmt: skip

PACKAGES = {"1": "sdk", "2": "client"}
"""The SDK line (MCP_SDK for client.mjs) and its npm package under @modelcontextprotocol."""


@pytest.fixture(params=["1", "2", "python-1"], ids=["ts-sdk-1.x", "ts-sdk-2.x", "py-sdk-1.x"])
def client(request: pytest.FixtureRequest) -> list[str]:
    """The command of one client, for ``_run_client``: the TypeScript SDK of a line, or the Python SDK 1.x."""
    if request.param == "python-1":
        if not PYTHON_MCP1.exists():
            pytest.skip(
                "Python SDK 1.x not installed: `python3 -m venv tests/interop/py-mcp1 && tests/interop/py-mcp1/bin/pip"
                " install -r tests/interop/requirements-mcp1.txt` (.ci/run does)"
            )
        return [str(PYTHON_MCP1), str(INTEROP / "client_mcp1.py")]
    if NODE is None:
        pytest.skip("Node.js is not installed (apt-get install nodejs npm)")
    package = INTEROP / "node_modules" / "@modelcontextprotocol" / PACKAGES[request.param]
    if not package.is_dir():
        pytest.skip(f"TypeScript SDK {request.param}.x not installed: run `npm ci` in tests/interop (.ci/run does)")
    return ["env", f"MCP_SDK={request.param}", str(NODE), str(INTEROP / "client.mjs")]


async def _store_with_a_transition(db: Path) -> None:
    """A store as ``serve`` leaves it, so ``list_transitions`` has a structured result to validate too."""
    seen = Transition(
        target="default", service_id="svc-1", service_name="ocr-prod", kind="changed", from_status="running",
        to_status="failed", transition_at=datetime.now(UTC), error_msg="OOMKilled",
    )  # fmt: skip
    async with Store(db) as store:
        await store.record_poll("default", "p1", [], [], [seen], None)


def _env(emulator_server: EmulatorServer, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SERVICES_BOT_"))}
    env.update(
        MODELARTS_ENDPOINT=emulator_server.url,
        MODELARTS_PROJECT_ID=emulator_server.settings.project_id,
        MODELARTS_AUTH_TOKEN=emulator_server.settings.token,
        SERVICES_BOT_DB=str(tmp_path / "store.db"),
        **extra,
    )
    return env


def _run_client(client: list[str], args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([*client, *args], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _judge(report: dict[str, Any], control: Control, emulator_server: EmulatorServer) -> None:
    assert set(report["tools"]) == TOOLS
    for name, tool in report["tools"].items():
        assert tool["title"] and tool["hasOutputSchema"], name
        assert not tool["isError"] and tool["valid"] is True, (name, tool["schemaErrors"], tool["text"][:300])
    fleet = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)["services"]
    default_workspace = [s for s in fleet if s.get("workspace_id") in (None, "0")]
    paging = report["paging"]
    assert paging["lastCursor"] is None and paging["pages"] > 1
    assert paging["seen"] == paging["total"] == len(default_workspace), "text-only paging reached the last service"
    mistakes = report["mistakes"]
    assert mistakes["misspelled"]["isError"] and "did you mean 'status'" in mistakes["misspelled"]["text"]
    capitals = mistakes["capitals"]
    assert not capitals["isError"] and capitals["structured"]["services"]
    assert {s["status"] for s in capitals["structured"]["services"]} == {"failed"}
    assert mistakes["unknownTool"]["code"] == -32602
    assert mistakes["unknownPrompt"]["code"] == -32602
    assert report["capabilities"]["resources"]["subscribe"] is False, "plain `mcp` has no watcher to publish"


def test_client_over_stdio(
    emulator_server: EmulatorServer, control: Control, tmp_path: Path, client: list[str]
) -> None:
    control.set_status(control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)[
        "services"][0]["service_id"], "failed", "OOMKilled")  # fmt: skip
    asyncio.run(_store_with_a_transition(tmp_path / "store.db"))
    env = _env(emulator_server, tmp_path)
    report = _run_client(client, ["stdio", sys.executable, "-m", "services_bot.cli", "mcp"], env)
    _judge(report, control, emulator_server)


def test_client_over_streamable_http(
    emulator_server: EmulatorServer, control: Control, tmp_path: Path, client: list[str]
) -> None:
    control.set_status(control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)[
        "services"][0]["service_id"], "failed", "OOMKilled")  # fmt: skip
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    asyncio.run(_store_with_a_transition(tmp_path / "store.db"))
    env = _env(emulator_server, tmp_path, SERVICES_BOT_MCP_TOKEN="interop-token")
    server = subprocess.Popen(
        [sys.executable, "-m", "services_bot.cli", "mcp", "--transport", "http", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
    )  # fmt: skip
    try:
        for _ in range(100):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        report = _run_client(client, ["http", f"http://127.0.0.1:{port}/mcp"], {**env, "MCP_TOKEN": "interop-token"})
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=10)
    _judge(report, control, emulator_server)
    assert "Traceback" not in stderr
