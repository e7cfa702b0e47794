"""The v2-only attributes of a service (type, auth type, task type, pool, creator, ...), derived from its seed.

The v1 service has no such fields, and a v1 fleet must stay byte for byte what it was, so these are not
drawn from the generator's random stream: they are cheap bit slices of the service's own ``detail_seed``,
computed when asked. The list filters read them for every service, hence bit operations and no RNG.
"""

from __future__ import annotations

from services_bot.emulator.fleet import Service

TYPES = ("REAL_TIME", "ASYNC_REAL_TIME")
AUTH_TYPES = ("TOKEN", "API_KEY", "NONE")
TASK_TYPES = (
    "TEXT_GENERATION",
    "IMAGE_UNDERSTANDING",
    "VIDEO_GENERATION",
    "IMAGE_GENERATION",
    "RERANK",
    "VECTOR_MODEL",
    "EMBEDDING",
)
#: (pool_id, pool_name) of the dedicated pools v2 deployments run in
POOLS = (
    ("pool-6f2d8a1c", "pool-gpu-shared"),
    ("pool-1b9e4d70", "pool-ascend-prod"),
    ("pool-c83a5f12", "pool-cpu-general"),
    ("pool-4e07b2d9", "pool-gpu-train-infer"),
)
USER_NAMES = ("ops-admin", "ml-dev", "ml-platform", "data-sci", "svc-deployer")


def v2_type(s: Service) -> str:
    return "ASYNC_REAL_TIME" if s.detail_seed & 0xF == 0 else "REAL_TIME"


def deploy_type(s: Service) -> str:
    return "MULTI" if (s.detail_seed >> 4) & 0xF == 0 else "SINGLE"


def auth_type(s: Service) -> str:
    return ("TOKEN", "TOKEN", "API_KEY", "NONE")[(s.detail_seed >> 8) & 3]


def task_type(s: Service) -> str:
    return TASK_TYPES[(s.detail_seed >> 10) % len(TASK_TYPES)]


def pool(s: Service) -> tuple[str, str]:
    return POOLS[(s.detail_seed >> 13) % len(POOLS)]


def user_name(s: Service) -> str:
    return USER_NAMES[(s.detail_seed >> 16) % len(USER_NAMES)]


def version_count(s: Service) -> int:
    return 1 + (s.detail_seed >> 19) % 4


def version(s: Service) -> str:
    """The current version number: the first model's version, which already reads like ``1.2.3``."""
    return s.models[0][2] if s.models else "1.0.0"


def node_ip(s: Service) -> str:
    """The node IP of the service's pods (the ``node_ip`` filter); only services with running pods have one."""
    return f"192.168.{(s.detail_seed >> 21) & 0xFF}.{2 + ((s.detail_seed >> 24) & 0x7F)}"


def has_pods(s: Service) -> bool:
    return s.v2_status in ("RUNNING", "CONCERNING", "UPGRADING")
