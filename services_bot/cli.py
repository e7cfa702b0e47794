"""``services-bot``: the command line (ask, emulator, demo).

Errors reach the user as one readable line and an exit code (2: bad input or configuration, 1: the API
failed, or answered only part of a listing: the partial answer is printed with its warning), never as a
traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from typing import Any

from services_bot.answers import answer, dumps_json
from services_bot.core.config import load_settings
from services_bot.core.errors import ApiError, CannotListenError, ServicesBotError
from services_bot.core.grammar import (
    HELP_TEXT,
    HelpCommand,
    parse_command,
)
from services_bot.core.version import VERSION
from services_bot.logs import setup_logging
from services_bot.wiring import access_of, open_existing_store, open_queries


async def _ask(text: str, as_json: bool) -> str:
    """Grammar errors and help come before any configuration or network error."""
    if isinstance(parse_command(text), HelpCommand):
        return json.dumps({"help": HELP_TEXT}) if as_json else HELP_TEXT
    async with open_queries(load_settings(), every_field=as_json) as queries:  # scripts get every field listed
        return await answer(queries, text, as_json=as_json)


def cmd_ask(args: argparse.Namespace) -> int:
    text = " ".join(args.text)
    try:
        output = asyncio.run(_ask(text, args.json))
    except ServicesBotError as exc:
        return _fail(exc, args.json)
    print(output)
    if not getattr(output, "complete", True):
        print("error: the answer is incomplete: ModelArts did not return every service (see above).", file=sys.stderr)
        return 1
    return 0


EXIT_OK, EXIT_API, EXIT_INPUT, EXIT_LISTEN = 0, 1, 2, 3
"""The exit codes, as the README's table documents them."""


def _fail(exc: ServicesBotError, as_json: bool) -> int:
    code = EXIT_API if isinstance(exc, ApiError) else EXIT_LISTEN if isinstance(exc, CannotListenError) else EXIT_INPUT
    if as_json:
        error: dict[str, Any] = {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
        if isinstance(exc, ApiError):
            error.update(status=exc.status, error_code=exc.error_code, request_id=exc.request_id)
        print(dumps_json({"error": error}))
    else:
        print(f"error: {exc.user_text()}", file=sys.stderr)
        if isinstance(exc, ApiError):
            print(f"       ({exc.details()})", file=sys.stderr)
    return code


def cmd_emulator(args: argparse.Namespace) -> int:
    from services_bot import emulator

    settings = emulator.settings_from_args(args)
    try:
        emulator.run(settings)
    except OSError as exc:
        return _fail(CannotListenError(
            f"Cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}.",
            hint="Pick another port with --port (0 picks a free one).",
        ), False)  # fmt: skip
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from services_bot.tools.server import create_mcp_server

    try:
        settings = load_settings()
        settings.targets()
        settings.auth_mode()
    except ServicesBotError as exc:
        return _fail(exc, False)
    server = create_mcp_server(lambda: open_queries(settings), open_store=lambda: open_existing_store(settings))
    if args.transport == "stdio":
        server.run()
        return 0
    from services_bot.tools.http import run_http

    host = args.host or settings.services_bot_host
    port = settings.services_bot_port if args.port is None else args.port
    try:
        run_http(
            server,
            host=host,
            port=port,
            token=settings.services_bot_mcp_token,
            allowed=settings.services_bot_mcp_allowed_hosts,
            session_idle_seconds=settings.services_bot_mcp_session_idle_seconds,
            access=access_of(settings),
        )
    except ServicesBotError as exc:
        return _fail(exc, False)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from services_bot.serve import run_serve

    try:
        settings = load_settings()
        host = args.host or settings.services_bot_host
        port = settings.services_bot_port if args.port is None else args.port
        run_serve(settings, host=host, port=port, mcp=not args.no_mcp, watch=not args.no_watch)
    except ServicesBotError as exc:
        return _fail(exc, False)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from services_bot.demo import run_demo

    try:
        return run_demo(port=args.port, services=args.services, churn=args.churn, once=args.once, poll=args.poll)
    except (ServicesBotError, RuntimeError, OSError) as exc:
        message = exc.user_text() if isinstance(exc, ServicesBotError) else str(exc)
        in_use = "in use" in message.lower()
        if in_use:  # another demo, most likely: say how to run a second one
            message += (
                " Is another demo running? `--port 0` picks free ports"
                f" (--port {args.port} uses {args.port} to {args.port + 2})."
            )
        print(f"error: {message}", file=sys.stderr)
        return EXIT_LISTEN if in_use or isinstance(exc, CannotListenError) else EXIT_INPUT


def build_parser() -> argparse.ArgumentParser:
    from services_bot import emulator

    parser = argparse.ArgumentParser(
        prog="services-bot",
        description="Ask about Huawei Cloud ModelArts inference services from Slack, MCP or the terminal.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log requests and retries to stderr")
    parser.add_argument("--version", action="version", version=f"services-bot {VERSION}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = sub.add_parser(
        "ask",
        help="answer a /services command in the terminal",
        description="Answer a /services command, e.g. `services-bot ask failed` or "
        '`services-bot ask "unhealthy type:real-time sort:changed"`. Configuration comes from the '
        "environment (MODELARTS_ENDPOINT or MODELARTS_REGION, MODELARTS_PROJECT_ID, credentials).",
        epilog=HELP_TEXT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ask.add_argument("--json", action="store_true", help="print the structured answer as JSON")
    ask.add_argument("text", nargs="*", help="the command, as after /services")
    ask.set_defaults(func=cmd_ask)

    emu = sub.add_parser("emulator", help="run a local emulator of the ModelArts services API")
    emulator.add_arguments(emu)
    emu.set_defaults(func=cmd_emulator)

    mcp = sub.add_parser(
        "mcp",
        help="serve the MCP tools over stdio (for an agent's config) or Streamable HTTP",
        description="MCP server: tools summarize_services, list_services, get_service, list_transitions, "
        "list_targets. Configuration comes from the environment, as for `ask`. Over HTTP the endpoint is /mcp; "
        "SERVICES_BOT_MCP_TOKEN, when set, is required as a bearer token, and is mandatory off loopback.",
    )
    mcp.add_argument("--transport", choices=["stdio", "http"], default="stdio", help="default stdio")
    mcp.add_argument("--host", help="HTTP address (default SERVICES_BOT_HOST, 127.0.0.1)")
    mcp.add_argument("--port", type=int, help="HTTP port (default SERVICES_BOT_PORT, 3000)")
    mcp.set_defaults(func=cmd_mcp)

    serve = sub.add_parser(
        "serve",
        help="production: the Slack app, MCP over HTTP and /healthz on one port",
        description="Serve the Slack app (Socket Mode when SLACK_APP_TOKEN is set, else HTTP at POST /slack/events "
        "with signatures verified with SLACK_SIGNING_SECRET), MCP over Streamable HTTP at /mcp and GET /healthz. "
        "Needs SLACK_BOT_TOKEN and the ModelArts settings, as for `ask`.",
    )
    serve.add_argument("--host", help="address (default SERVICES_BOT_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default SERVICES_BOT_PORT, 3000)")
    serve.add_argument(
        "--no-mcp", action="store_true", help="do not serve /mcp (e.g. bound beyond loopback without a token)"
    )
    serve.add_argument("--no-watch", action="store_true", help="answer commands only: no watcher, no alerts")
    serve.set_defaults(func=cmd_serve)

    demo = sub.add_parser(
        "demo",
        help="everything, no accounts: emulated ModelArts, a local Slack workspace page, the bot, MCP over HTTP",
        description="Start an emulated ModelArts with a churning fleet, a local Slack-like workspace (a web page), "
        "and the bot wired to both (slash commands, alerts from the watcher, MCP over HTTP). Prints the URLs; "
        "Ctrl-C stops everything.",
    )
    demo.add_argument(
        "--port", type=int, default=8090, help="emulator port; the workspace uses port+1, the bot port+2 (0 = any)"
    )
    demo.add_argument("--services", type=int, default=200, help="fleet size (default 200)")
    demo.add_argument("--churn", type=float, default=0.3, help="status transitions per second (default 0.3)")
    demo.add_argument("--poll", type=float, default=2.0, help="watcher interval in seconds (default 2)")
    demo.add_argument("--once", action="store_true", help="answer a few commands, then exit instead of serving")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
