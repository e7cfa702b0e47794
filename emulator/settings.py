"""Settings of the emulator, and the command-line options that fill them.

The emulator is configured by one plain dataclass so that tests, the demo and the CLI all build it the same
way. ``add_arguments``/``settings_from_args`` let the lead's ``services-bot emulator`` command expose the
options without knowing the dataclass in detail.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

from services_bot.emulator.generations import FLEET_GENERATIONS

OFFSET_MODES = ("page", "record")


@dataclass
class EmulatorSettings:
    """Everything that shapes one emulator instance.

    ``services``/``seed`` fix the generated fleet (same pair, same fleet). ``anchor_ms`` fixes the clock the
    generated timestamps are relative to; by default it is the start of the current UTC day, so two fleets
    generated on the same day are identical byte for byte.
    """

    host: str = "127.0.0.1"
    port: int = 8090  # 0 = pick a free port
    services: int = 200  # fleet size
    seed: int = 42
    churn: float = 0.0  # automatic status transitions per second across the fleet (0 = none)
    offset_mode: str = "page"  # "page" (first record = offset*limit) or "record" (first record = offset)
    project_id: str = "emulator-project"
    token: str = "emulator-token"  # a static X-Auth-Token that is always valid
    ak: str = "EMULATORAK0000000000"  # AK/SK accepted for SDK-HMAC-SHA256 signing
    sk: str = "emulator-secret-key"
    security_token: str | None = None  # if set, signed requests must carry X-Security-Token equal to it
    iam_domain: str = "demo-domain"
    iam_user: str = "demo"
    iam_password: str = "demo-password"
    token_ttl_seconds: int = 86400  # lifetime of IAM-issued tokens
    workspaces: int = 3  # number of non-default workspaces besides "0"
    anchor_ms: int | None = None  # generated timestamps lie before this instant (default: today 00:00 UTC)
    # which API generations the generated services live on: "v1", "v2", or "mixed" (~45% v1, 45% v2, 10% both)
    generations: str = "v1"

    def __post_init__(self) -> None:
        if self.offset_mode not in OFFSET_MODES:
            raise ValueError(f"offset_mode must be one of {OFFSET_MODES}, not {self.offset_mode!r}")
        if self.services < 0:
            raise ValueError("services must be >= 0")
        if self.churn < 0:
            raise ValueError("churn must be >= 0")
        if self.workspaces < 0:
            raise ValueError("workspaces must be >= 0")
        if self.generations not in FLEET_GENERATIONS:
            raise ValueError(f"generations must be one of {FLEET_GENERATIONS}, not {self.generations!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to a CLI parser (defaults come from ``EmulatorSettings``)."""
    d = EmulatorSettings()
    parser.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host})")
    parser.add_argument(
        "--port", type=int, default=d.port, help=f"port to listen on, 0 = any free port (default {d.port})"
    )
    parser.add_argument(
        "--services", type=int, default=d.services, help=f"size of the simulated fleet (default {d.services})"
    )
    parser.add_argument(
        "--seed", type=int, default=d.seed, help=f"random seed; the same seed gives the same fleet (default {d.seed})"
    )
    parser.add_argument(
        "--churn",
        type=float,
        default=d.churn,
        help="automatic status transitions per second across the fleet, 0 = a still fleet (default 0)",
    )
    parser.add_argument(
        "--offset-mode",
        choices=OFFSET_MODES,
        default=d.offset_mode,
        help="how the list API reads 'offset': 'page' = page index (first record offset*limit), "
        "'record' = index of the first record (default page)",
    )
    parser.add_argument(
        "--generations",
        choices=FLEET_GENERATIONS,
        default=d.generations,
        help="API generations of the fleet: 'v1' = every service on /v1/ paths only, 'v2' = on /v2/ paths only, "
        "'mixed' = about 45%% v1, 45%% v2 and 10%% on both (default v1)",
    )
    parser.add_argument(
        "--project-id", default=d.project_id, help=f"the only project id the API serves (default {d.project_id})"
    )
    parser.add_argument("--token", default=d.token, help="a static X-Auth-Token that is always accepted")
    parser.add_argument("--ak", default=d.ak, help="access key accepted for SDK-HMAC-SHA256 request signing")
    parser.add_argument("--sk", default=d.sk, help="secret key that goes with --ak")


def settings_from_args(ns: argparse.Namespace) -> EmulatorSettings:
    """Build settings from parsed arguments; attributes the namespace lacks keep their defaults."""
    names = {f.name for f in fields(EmulatorSettings)}
    values = {k: v for k, v in vars(ns).items() if k in names and v is not None}
    return EmulatorSettings(**values)
