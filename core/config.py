"""Configuration: environment variables (DESIGN.md) plus an optional TOML file of several targets.

A *target* is one place to ask: an endpoint (from the region or an override), a project and optionally
workspaces. Credentials come from the environment only, never from the targets file, so that file can be
committed and shared.
"""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from services_bot.core.errors import ConfigError

AuthMode = Literal["token", "iam", "aksk"]
ApiGeneration = Literal["v1", "v2", "both"]
API_GENERATIONS: tuple[str, ...] = ("v1", "v2", "both")


DEFAULT_CONSOLE_HOST = "console.huaweicloud.com"
"""Where "Open in console" links point (``core.service_fields.console_url``); other clouds set their own."""


def region_endpoint(region: str) -> str:
    """The documented regional endpoint pattern."""
    return f"https://modelarts.{region}.myhuaweicloud.com"


def region_iam_endpoint(region: str) -> str:
    return f"https://iam.{region}.myhuaweicloud.com"


class Target(BaseModel):
    """One project in one region (optionally some workspaces) that the bot answers for."""

    name: str
    endpoint: str
    project_id: str
    region: str | None = None
    workspace_ids: list[str] = Field(
        default_factory=list,
        description="Workspaces to list; empty means the API's default workspace only (quirk Q29).",
    )
    channels: list[str] = Field(
        default_factory=list,
        description="Slack channel ids bound to this target (core.access): they see only their targets.",
    )
    admins: list[str] = Field(
        default_factory=list, description="Slack user or user-group ids who administer the channels bound here."
    )
    mcp_tokens: list[SecretStr] = Field(
        default_factory=list, exclude=True, repr=False, description="MCP bearer tokens that see this target."
    )
    mute_limit: timedelta | None = Field(
        None, description="Longest mute a non-admin may set in the channels bound here (default 24 h)."
    )
    api_generation: ApiGeneration = Field(
        "both", description="Which services API to read: v1, v2, or both merged (core.generations)."
    )

    @field_validator("endpoint")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"endpoint '{value}' must start with http:// or https://")
        return value.rstrip("/")


class Settings(BaseSettings):
    """Every setting of services-bot, read from the environment (and a ``.env`` file if present)."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    modelarts_region: str | None = Field(None, description="Region, e.g. cn-north-4; gives the endpoint.")
    modelarts_endpoint: str | None = Field(None, description="Overrides the endpoint (emulator, other cloud).")
    modelarts_project_id: str | None = Field(
        None,
        validation_alias=AliasChoices("MODELARTS_PROJECT_ID", "HUAWEICLOUD_SDK_PROJECT_ID"),
        description="Project id (falls back to HUAWEICLOUD_SDK_PROJECT_ID).",
    )
    modelarts_workspace_id: str | None = Field(
        None, description="Only this workspace; without it the API lists the default workspace 0 only."
    )
    modelarts_api_generation: str = Field(
        "both",
        description="Which services API a target reads: `v1` (`/v1/{project}/services`), `v2` (the newer "
        "`/v2/{project}/services`) or `both`, merged and de-duplicated by service id; with `both`, a generation "
        "whose list answers 404 in that region is skipped after that one probe (logged once). A targets file "
        "sets it per target with `api_generation`.",
    )
    modelarts_auth_token: SecretStr | None = Field(None, description="A static X-Auth-Token (IAM tokens last 24 h).")
    huaweicloud_sdk_ak: SecretStr | None = Field(None, description="Access key for AK/SK request signing.")
    huaweicloud_sdk_sk: SecretStr | None = Field(None, description="Secret key for AK/SK request signing.")
    huaweicloud_sdk_security_token: SecretStr | None = Field(
        None, description="Security token of temporary AK/SK credentials."
    )
    huaweicloud_iam_username: str | None = Field(
        None,
        description="IAM user for password login: a project-scoped token is fetched, cached, refreshed 5 minutes "
        "before it expires and once on a 401.",
    )
    huaweicloud_iam_password: SecretStr | None = Field(None, description="IAM password.")
    huaweicloud_iam_domain: str | None = Field(None, description="IAM account (domain) name.")
    huaweicloud_iam_endpoint: str | None = Field(
        None, description="IAM endpoint (default from the region, else the ModelArts endpoint)."
    )
    services_bot_config: Path | None = Field(None, description="TOML file listing several targets.")
    services_bot_console_host: str = Field(
        DEFAULT_CONSOLE_HOST,
        description='Host of the ModelArts console that "Open in console" links to: '
        "`https://{host}/modelarts/?region={region}#/model-deployment/real-time/{service_id}` (the region from the "
        "target; a target without a region gets no link). Set it for another cloud, e.g. `console.otc.t-systems.com`.",
    )
    services_bot_host: str = Field("127.0.0.1", description="Address `serve` and `mcp --transport http` listen on.")
    services_bot_port: int = Field(3000, ge=0, le=65535, description="Port of `serve` and `mcp --transport http`.")
    services_bot_mcp_token: SecretStr | None = Field(
        None,
        description="Bearer token for MCP over HTTP, seeing every target (a target's `mcp_tokens` in the targets "
        "file see only that target); a token is mandatory when not bound to loopback.",
    )
    services_bot_admins: str = Field(
        "",
        description="Slack user ids (U…) and user-group ids (S…), comma-separated, who alone may watch, unwatch "
        "and mute for longer than 24 h, and read `/services audit` for every channel; empty: everyone may.",
    )
    services_bot_channel_default: Literal["all", "none"] = Field(
        "all",
        description="What a channel that no target's `channels` binds may see: `all` targets, or `none`.",
    )
    services_bot_mcp_allowed_hosts: str = Field(
        "",
        description="Host names MCP over HTTP answers to when bound beyond loopback, comma-separated (`bot.internal`"
        " allows any port, `bot.internal:3000` one); loopback names always work. Other Host headers get 421 "
        "(DNS-rebinding protection).",
    )
    services_bot_mcp_session_idle_seconds: float = Field(
        1800.0,
        gt=0,
        description="An MCP-over-HTTP session with no request in flight for this long is closed (its id then "
        "answers 404 and the client starts a new one), so abandoned sessions do not pile up.",
    )
    services_bot_timeout_seconds: float = Field(10.0, gt=0, description="Per-request timeout.")
    services_bot_max_retries: int = Field(
        3, ge=0, le=10, description="Retries on 429, 5xx, timeouts and connection errors."
    )
    services_bot_retry_base_seconds: float = Field(
        0.2, gt=0, description="First backoff before a retry; doubles each retry, with jitter; Retry-After wins."
    )
    services_bot_retry_budget_seconds: float = Field(
        20.0, gt=0, description="Longest total time spent retrying one request."
    )
    services_bot_concurrency: int = Field(8, ge=1, le=64, description="Parallel API requests per target.")
    services_bot_page_size: int = Field(
        1000,
        ge=10,
        le=1000,
        description="Services asked for per API page, 10 to 1000 (1000 is the v1 API's default and the most it "
        "documents); a server that serves fewer per page is followed, and paging goes on until total_count.",
    )
    services_bot_cache_seconds: float = Field(
        5.0, ge=0, description="How long a listing is reused for repeated queries (0 = never)."
    )
    services_bot_answer_fresh_seconds: float = Field(
        1.0,
        ge=0,
        le=60,
        description="In `serve`, an answer stands on the watcher's state brought up to now by its incremental "
        "poll, unless a poll started less than this long ago (0 = always poll first).",
    )
    slack_bot_token: SecretStr | None = Field(None, description="Slack bot token (xoxb-…).")
    slack_signing_secret: SecretStr | None = Field(
        None, description="Slack signing secret; every HTTP request from Slack is verified with it."
    )
    slack_app_token: SecretStr | None = Field(
        None, description="Slack app-level token (xapp-…); when set, `serve` uses Socket Mode instead of HTTP."
    )
    slack_api_url: str = Field(
        "https://slack.com/api/", description="Slack Web API base URL (a local stand-in in the demo and tests)."
    )
    services_bot_slack_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="Timeout of one Slack Web API call; an alert post that got no answer is looked up in its "
        "channel, no sooner than this, before it is tried again.",
    )
    services_bot_db: Path = Field(Path("services-bot.db"), description="SQLite file of the watcher's store.")
    services_bot_poll_seconds: float = Field(30.0, gt=0, description="Seconds between watcher polls.")
    services_bot_resync_polls: int = Field(
        20, ge=1, description="A full listing every N polls (catches deletions and clock skew); cheap polls between."
    )
    services_bot_notify_baseline: bool = Field(
        False, description="Alert on the services already unhealthy at the first poll of a fresh store."
    )
    services_bot_alert_channel: str | None = Field(
        None, description="Channel id of the default subscription (and of watcher outage messages)."
    )
    services_bot_alert_statuses: str = Field(
        "failed,concerning", description="Statuses of the default subscription, comma-separated."
    )
    services_bot_history_days: int = Field(30, ge=1, description="Days of transition history kept.")
    services_bot_group_threshold: int = Field(
        5, ge=1, description="More transitions than this for one channel in one poll become one grouped message."
    )
    services_bot_outage_polls: int = Field(
        3,
        ge=1,
        description="Failed polls in a row before the alert channel is told ModelArts cannot be reached (the "
        "watcher's own polls; the on-demand polls of answers do not count).",
    )
    services_bot_delivery_backoff_seconds: float = Field(
        2.0,
        gt=0,
        description="First wait before alerts Slack could not take (no answer, 429, 5xx) are tried again; doubles "
        "with each failure in a row, with jitter, up to SERVICES_BOT_DELIVERY_BACKOFF_MAX_SECONDS; a 429's "
        "Retry-After wins. Such failures are retried for as long as they last.",
    )
    services_bot_delivery_backoff_max_seconds: float = Field(
        60.0, gt=0, description="Longest wait between two tries while Slack cannot take alerts."
    )
    services_bot_delivery_stale_seconds: float = Field(
        120.0,
        gt=0,
        description="/healthz turns 503 when an alert has waited this long undelivered (Slack down, throttling).",
    )
    services_bot_delivery_late_note_seconds: float = Field(
        60.0,
        gt=0,
        description="An alert posted this long or longer after its transition was seen says how late it is, and why.",
    )
    services_bot_slack_history_per_minute: float = Field(
        50.0,
        gt=0,
        description="conversations.history/.replies calls a minute when looking for alerts already posted after a "
        "crash: Slack's Tier 3 (50) for internal and Marketplace apps; 1 for a commercially distributed "
        "non-Marketplace app (Slack's 2025 limits).",
    )
    services_bot_slack_history_page_size: int = Field(
        200,
        ge=1,
        le=999,
        description="Messages asked per history page (Slack recommends at most 200; 15 for a commercially "
        "distributed non-Marketplace app).",
    )

    def auth_mode(self) -> AuthMode:
        """Pick the one configured credential; two at once is a mistake worth naming."""
        modes: list[AuthMode] = []
        if self.modelarts_auth_token:
            modes.append("token")
        if self.huaweicloud_sdk_ak or self.huaweicloud_sdk_sk:
            if not (self.huaweicloud_sdk_ak and self.huaweicloud_sdk_sk):
                raise ConfigError(
                    "Only one of HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK is set.",
                    hint="Set both for AK/SK signing.",
                )
            modes.append("aksk")
        if self.huaweicloud_iam_username or self.huaweicloud_iam_password:
            missing = [
                name
                for name, value in (
                    ("HUAWEICLOUD_IAM_USERNAME", self.huaweicloud_iam_username),
                    ("HUAWEICLOUD_IAM_PASSWORD", self.huaweicloud_iam_password),
                    ("HUAWEICLOUD_IAM_DOMAIN", self.huaweicloud_iam_domain),
                )
                if not value
            ]
            if missing:
                raise ConfigError(
                    f"IAM password login is incomplete: {', '.join(missing)} not set.",
                    hint="Set HUAWEICLOUD_IAM_USERNAME, HUAWEICLOUD_IAM_PASSWORD and HUAWEICLOUD_IAM_DOMAIN.",
                )
            modes.append("iam")
        if not modes:
            raise ConfigError(
                "No ModelArts credentials are configured.",
                hint="Set MODELARTS_AUTH_TOKEN, or HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK, or the "
                "HUAWEICLOUD_IAM_USERNAME/PASSWORD/DOMAIN trio.",
            )
        if len(modes) > 1:
            raise ConfigError(
                f"Several credentials are configured ({', '.join(modes)}).",
                hint="Keep exactly one of: a static token, AK/SK, or IAM user/password.",
            )
        return modes[0]

    def targets(self) -> list[Target]:
        """The targets file if one is named, else the single target the variables describe."""
        if self.services_bot_config:
            return load_targets_file(self.services_bot_config, self)
        if not self.modelarts_project_id:
            raise ConfigError(
                "MODELARTS_PROJECT_ID is not set.",
                hint="Set MODELARTS_PROJECT_ID (or HUAWEICLOUD_SDK_PROJECT_ID), or SERVICES_BOT_CONFIG.",
            )
        endpoint = self._endpoint_for(self.modelarts_region, self.modelarts_endpoint, "environment")
        workspaces = [self.modelarts_workspace_id] if self.modelarts_workspace_id else []
        return [
            _target(
                name=self.modelarts_region or "default",
                endpoint=endpoint,
                project_id=self.modelarts_project_id,
                region=self.modelarts_region,
                workspace_ids=workspaces,
                api_generation=api_generation(self.modelarts_api_generation, "MODELARTS_API_GENERATION"),
            )
        ]

    def admin_ids(self) -> list[str]:
        """SERVICES_BOT_ADMINS, each id checked, so a typo is a start-up error rather than nobody being admin."""
        ids = [part.strip() for part in self.services_bot_admins.split(",") if part.strip()]
        for value in ids:
            if not ADMIN_ID.match(value):
                raise ConfigError(
                    f"SERVICES_BOT_ADMINS: '{value[:40]}' is not a Slack user id (U…, W…) or user-group id (S…).",
                    hint="Copy ids from a member's profile (⋮ → Copy member ID) or the user group's page.",
                )
        return ids

    def iam_endpoint(self, target: Target) -> str:
        if self.huaweicloud_iam_endpoint:
            return self.huaweicloud_iam_endpoint.rstrip("/")
        if target.region and not self.modelarts_endpoint:
            return region_iam_endpoint(target.region)
        return target.endpoint

    @staticmethod
    def _endpoint_for(region: str | None, endpoint: str | None, where: str) -> str:
        if endpoint:
            return endpoint
        if region:
            return region_endpoint(region)
        raise ConfigError(
            f"No ModelArts endpoint in the {where}.",
            hint="Set MODELARTS_REGION (e.g. cn-north-4) or MODELARTS_ENDPOINT.",
        )


def api_generation(value: object, where: str) -> ApiGeneration:
    """``v1``, ``v2`` or ``both`` (any case); anything else is named with the three choices."""
    text = str(value).strip().lower() if isinstance(value, str) else ""
    if text in API_GENERATIONS:
        return text  # type: ignore[return-value]
    raise ConfigError(
        f"{where} is {str(value)[:40]!r}, not an API generation.",
        hint="Use v1, v2 or both (both reads the two and merges them).",
    )


def _target(**fields: object) -> Target:
    try:
        return Target.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"Invalid target {fields.get('name')!r}: {first['msg']}.") from None


CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,30}$")
ADMIN_ID = re.compile(r"^[UWS][A-Z0-9]{2,30}$")
_DURATION = re.compile(r"^(?:(\d{1,6})([smhdw]))+$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
MAX_MUTE_LIMIT = timedelta(days=30)


def _line_of(text: str, index: int, key: str, value: str | None = None) -> int:
    """The line (1-based) of ``key`` (or of ``value`` after it) in the ``index``-th ``[[targets]]`` table: TOML
    parsers give no positions, and "line 12" is what lets someone find the mistake."""
    lines = text.splitlines()
    tables = [n for n, line in enumerate(lines) if line.strip().startswith("[[targets]]")]
    start = tables[index - 1] if index - 1 < len(tables) else 0
    end = tables[index] if index < len(tables) else len(lines)
    key_line = next((n for n in range(start, end) if re.match(rf"\s*{re.escape(key)}\s*=", lines[n])), start)
    if value is not None:
        quoted = (f'"{value}"', f"'{value}'")
        return next((n + 1 for n in range(key_line, end) if any(q in lines[n] for q in quoted)), key_line + 1)
    return key_line + 1


def _id_list(
    entry: dict[str, Any], key: str, pattern: re.Pattern[str], what: str, where: tuple[Path, str, int]
) -> list[str]:
    path, text, index = where
    raw = entry.get(key, [])
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        line = _line_of(text, index, key)
        raise ConfigError(f'{path}, line {line}: `{key}` must be a list of strings, e.g. {key} = ["C0123ABCD"].')
    for value in raw:
        if not pattern.match(value):
            line = _line_of(text, index, key, value)
            raise ConfigError(
                f"{path}, line {line}: '{value[:40]}' in `{key}` is not {what}.",
                hint="Slack shows ids in a channel's or member's details (C…/G… for channels, U…/W… for people, "
                "S… for user groups); names such as #alerts or @alice do not work here.",
            )
    return raw


def _duration(entry: dict[str, Any], key: str, where: tuple[Path, str, int]) -> timedelta | None:
    path, text, index = where
    raw = entry.get(key)
    if raw is None:
        return None
    compact = str(raw).strip().lower().replace(" ", "")
    match = _DURATION.match(compact) if isinstance(raw, str) and len(compact) <= 32 else None
    seconds = sum(int(n) * _UNIT[u] for n, u in re.findall(r"(\d+)([smhdw])", compact)) if match else 0
    if not match or seconds <= 0 or seconds > MAX_MUTE_LIMIT.total_seconds():
        line = _line_of(text, index, key)
        raise ConfigError(
            f"{path}, line {line}: `{key}` = {str(raw)[:40]!r} is not a duration of at most 30 days.",
            hint='Write a number and a unit in quotes, e.g. mute_limit = "4h" (s, m, h, d, w).',
        )
    return timedelta(seconds=seconds)


def _tokens(entry: dict[str, Any], where: tuple[Path, str, int]) -> list[str]:
    path, text, index = where
    raw = entry.get("mcp_tokens", [])
    if not isinstance(raw, list) or not all(isinstance(v, str) and len(v) >= 16 for v in raw):
        line = _line_of(text, index, "mcp_tokens")
        raise ConfigError(
            f"{path}, line {line}: `mcp_tokens` must be a list of strings of at least 16 characters.",
            hint="Generate one with `python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`.",
        )
    return raw


def load_targets_file(path: Path, settings: Settings) -> list[Target]:
    """Read ``[[targets]]`` tables: name, region or endpoint, project_id, optional workspace_ids and
    api_generation (default MODELARTS_API_GENERATION), and the access keys ``channels``, ``admins``,
    ``mcp_tokens``, ``mute_limit`` (checked here, each mistake named by line)."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"SERVICES_BOT_CONFIG points to {path}, which does not exist.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.", hint="Fix the file's syntax.") from None
    entries = data.get("targets")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(
            f"{path} has no [[targets]] entries.",
            hint='Add at least one: [[targets]] name = "prod" region = "cn-north-4" project_id = "...".',
        )
    targets: list[Target] = []
    for index, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict):
            raise ConfigError(f"Target #{index} in {path} is not a table.")
        name = str(entry.get("name") or f"target-{index}")
        project = entry.get("project_id") or settings.modelarts_project_id
        if not project:
            raise ConfigError(f"Target '{name}' in {path} has no project_id.")
        region = entry.get("region") or settings.modelarts_region
        endpoint = Settings._endpoint_for(region, entry.get("endpoint"), f"target '{name}' of {path}")
        workspaces = entry.get("workspace_ids") or ([entry["workspace_id"]] if entry.get("workspace_id") else [])
        where = (path, text, index)
        targets.append(
            _target(
                name=name,
                endpoint=endpoint,
                project_id=str(project),
                region=region,
                workspace_ids=[str(w) for w in workspaces],
                channels=_id_list(entry, "channels", CHANNEL_ID, "a Slack channel id (C…, G…)", where),
                admins=_id_list(entry, "admins", ADMIN_ID, "a Slack user id (U…, W…) or user-group id (S…)", where),
                mcp_tokens=_tokens(entry, where),
                mute_limit=_duration(entry, "mute_limit", where),
                api_generation=api_generation(
                    entry.get("api_generation", settings.modelarts_api_generation),
                    f"api_generation of target '{name}' in {path}",
                ),
            )
        )
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"Target names in {path} must be unique; got {names}.")
    return targets


def load_settings() -> Settings:
    """Settings from the environment, with pydantic's errors turned into one readable sentence."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"Invalid configuration: {problems}.") from None
