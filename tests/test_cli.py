"""`services-bot ask` as a person or a script uses it: readable tables, JSON for scripts, no tracebacks."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from services_bot.emulator import EmulatorServer

from tests.conftest import Control


def run(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MODELARTS_", "HUAWEICLOUD_", "SERVICES_BOT_"))}
    return subprocess.run(
        [sys.executable, "-m", "services_bot.cli", *args],
        env={**base, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )


def env_for(server: EmulatorServer, **extra: str) -> dict[str, str]:
    return {
        "MODELARTS_ENDPOINT": server.url,
        "MODELARTS_PROJECT_ID": server.settings.project_id,
        "MODELARTS_AUTH_TOKEN": server.settings.token,
        **extra,
    }


def assert_no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stdout + proc.stderr


def test_ask_failed_prints_a_table_with_errors(emulator_server: EmulatorServer, control: Control) -> None:
    row = control.list_raw(emulator_server.settings.project_id, emulator_server.settings.token)["services"][0]
    control.set_status(row["service_id"], "failed", "CrashLoopBackOff in container model")
    proc = run(["ask", "failed"], env_for(emulator_server))
    assert proc.returncode == 0, proc.stderr
    assert "STATUS" in proc.stdout and row["service_name"] in proc.stdout
    assert "CrashLoopBackOff in container model" in proc.stdout


def test_ask_json_has_total_and_services(emulator_server: EmulatorServer, control: Control) -> None:
    proc = run(["ask", "--json", "unhealthy type:real-time sort:changed"], env_for(emulator_server))
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert isinstance(answer["total"], int)
    for service in answer["services"]:
        assert {"service_id", "service_name", "status"} <= service.keys()
        assert service["status"] in ("failed", "concerning") and service["infer_type"] == "real-time"


def test_ask_summary_and_show(emulator_server: EmulatorServer, control: Control) -> None:
    created = control.add(service_name="cli-show-target", status="running")
    summary = run(["ask", "summary"], env_for(emulator_server))
    assert summary.returncode == 0 and "By status:" in summary.stdout
    show = run(["ask", "show", "cli-show-target"], env_for(emulator_server))
    assert show.returncode == 0 and created["service_id"] in show.stdout and "model:" in show.stdout
    shown = json.loads(run(["ask", "--json", "show", created["service_id"]], env_for(emulator_server)).stdout)
    assert shown["service_id"] == created["service_id"] and shown["config"]


def test_ask_show_a_name_with_a_space_signed_with_aksk(emulator_server: EmulatorServer, control: Control) -> None:
    """``services-bot ask show "ocr prod"`` with AK/SK: the CLI goes through the client's one URL path, so the
    name reaches the strict verifier as the %20 it signed (a '+' there was a 401, issue item 6)."""
    created = control.add(service_name="ocr prod", status="running")
    s = emulator_server.settings
    env = {k: v for k, v in env_for(emulator_server).items() if k != "MODELARTS_AUTH_TOKEN"}
    proc = run(["ask", "show", "ocr prod"], {**env, "HUAWEICLOUD_SDK_AK": s.ak, "HUAWEICLOUD_SDK_SK": s.sk})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert created["service_id"] in proc.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["ask", "faild"], "Did you mean 'failed'?"),
        (["ask", "limit:0"], "between 1 and 1000"),
        (["ask", "show", "no-such-service-anywhere"], "No service with id or name"),
    ],
)
def test_bad_input_is_one_clear_line(emulator_server: EmulatorServer, args: list[str], fragment: str) -> None:
    proc = run(args, env_for(emulator_server))
    assert proc.returncode == 2
    assert fragment in proc.stderr
    assert_no_traceback(proc)


def test_missing_configuration_is_explained() -> None:
    proc = run(["ask", "failed"], {})
    assert proc.returncode == 2 and "MODELARTS_PROJECT_ID" in proc.stderr
    assert_no_traceback(proc)


def test_unreachable_api_is_explained_with_exit_1() -> None:
    env = {
        "MODELARTS_ENDPOINT": "http://127.0.0.1:9",
        "MODELARTS_PROJECT_ID": "p",
        "MODELARTS_AUTH_TOKEN": "t",
        "SERVICES_BOT_MAX_RETRIES": "1",
        "SERVICES_BOT_RETRY_BASE_SECONDS": "0.01",
    }
    proc = run(["ask", "failed"], env)
    assert proc.returncode == 1 and "Cannot reach ModelArts" in proc.stderr
    assert_no_traceback(proc)
    as_json = json.loads(run(["ask", "--json", "failed"], env).stdout)
    assert as_json["error"]["type"] == "UnavailableError"


def test_help_lists_the_grammar() -> None:
    proc = run(["ask", "help"])
    assert proc.returncode == 0 and "/services show" in proc.stdout


def test_demo_once_answers_and_exits() -> None:
    proc = run(["demo", "--once", "--port", "0", "--services", "60"], timeout=90)
    assert proc.returncode == 0, proc.stderr
    assert "-m services_bot.cli ask summary" in proc.stdout and "By status:" in proc.stdout  # runnable as printed
    assert "Slack workspace  http://127.0.0.1:" in proc.stdout and "/mcp" in proc.stdout
    assert "/services summary in the workspace: ack" in proc.stdout and "unhealthy" in proc.stdout
    assert_no_traceback(proc)


def test_the_demo_banner_prints_commands_that_work_as_printed() -> None:
    """`services-bot ask …` is not on the PATH of someone who ran the README's `.venv/bin/services-bot demo`."""
    script = Path(sys.executable).parent / "services-bot"
    proc = subprocess.run(
        [str(script), "demo", "--once", "--port", "0", "--services", "20"],
        capture_output=True, text=True, timeout=120, cwd="/",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    printed = next(line.strip() for line in proc.stdout.splitlines() if line.strip().endswith(" ask failed"))
    command = shlex.split(printed)[0]
    assert Path(command).is_absolute() and Path(command).is_file(), printed
    assert "$ services-bot ask" not in proc.stdout


def test_a_port_in_use_exits_3_with_the_fix(tmp_path: Path) -> None:
    """Exit 3 (the README's table) for every server command; the emulator used to die with a traceback."""
    api = {"MODELARTS_ENDPOINT": "http://127.0.0.1:9", "MODELARTS_PROJECT_ID": "p", "MODELARTS_AUTH_TOKEN": "t"}
    slack = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "s", "SERVICES_BOT_DB": str(tmp_path / "s.db")}
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = str(busy.getsockname()[1])
        demo = run(["demo", "--once", "--port", port])
        mcp = run(["mcp", "--transport", "http", "--port", port], api)
        serve = run(["serve", "--port", port], {**api, **slack})
        emulator = run(["emulator", "--port", port, "--services", "5"])
    assert "--port 0" in demo.stderr, demo.stderr
    assert "MCP over Streamable HTTP at" not in mcp.stdout, "no URL for a server that is not listening"
    for proc in (demo, mcp, serve, emulator):
        assert proc.returncode == 3, (proc.args, proc.stderr)
        assert "in use" in proc.stderr.lower() and "--port" in proc.stderr, proc.stderr
        assert_no_traceback(proc)


def test_usage_errors_and_the_version_exit_as_documented() -> None:
    assert run([]).returncode == 2
    assert run(["--bogus"]).returncode == 2
    assert run(["ask", "faild"]).returncode == 2
    assert run(["--version"]).returncode == 0
