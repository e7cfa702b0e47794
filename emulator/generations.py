"""The two generations of the service API: which paths a service lives on, and the two status vocabularies.

A service's ``generation`` is ``"v1"`` (only on ``/v1/`` paths), ``"v2"`` (only on ``/v2/`` paths) or
``"both"`` (the same id on both, each path in its own vocabulary). Every service keeps its v1 reading in
``Service.status`` (what the v1 paths show and the v1 state machine reads); v2 and both services also keep
``Service.v2_status``, the upper-case v2 status the v2 paths show.

The translation is this emulator's own reading of ``v1-v2-mapping.md`` section 5. The shared values map by
case; ``pending`` ≈ ``INIT``; ``waiting`` is read as ``DEPLOYING`` (the page says "might"); the v2-only values
read on v1 as ``ERROR`` → ``failed`` (the page: "treat it like failed"), ``UPGRADING`` → ``deploying`` (an
upgrade is a new release rolling out) and ``INTERRUPTING`` → ``stopping``. Anything else is an open string:
upper-cased for v2, lower-cased for v1.
"""

from __future__ import annotations

import random

GENERATIONS = ("v1", "v2", "both")
#: what ``EmulatorSettings.generations`` may say about a whole fleet
FLEET_GENERATIONS = ("v1", "v2", "mixed")
#: shares of a "mixed" fleet, cumulative: v1, v2, both
_MIXED = ((0.45, "v1"), (0.90, "v2"), (1.0, "both"))

V1_STATUSES = frozenset(
    (
        "running",
        "deploying",
        "concerning",
        "failed",
        "stopped",
        "finished",
        "stopping",
        "deleting",
        "pending",
        "waiting",
    )
)
#: the list filter's ten values (v2-list-services.md) plus INIT, which only details show (v2-show-service.md)
V2_STATUSES = (
    "DEPLOYING",
    "FAILED",
    "STOPPED",
    "RUNNING",
    "DELETING",
    "STOPPING",
    "CONCERNING",
    "UPGRADING",
    "ERROR",
    "INTERRUPTING",
    "INIT",
)
V1_TO_V2 = {
    "running": "RUNNING",
    "deploying": "DEPLOYING",
    "concerning": "CONCERNING",
    "failed": "FAILED",
    "stopped": "STOPPED",
    "stopping": "STOPPING",
    "deleting": "DELETING",
    "pending": "INIT",
    "waiting": "DEPLOYING",
}
V2_TO_V1 = {
    "RUNNING": "running",
    "DEPLOYING": "deploying",
    "CONCERNING": "concerning",
    "FAILED": "failed",
    "STOPPED": "stopped",
    "STOPPING": "stopping",
    "DELETING": "deleting",
    "INIT": "pending",
    "ERROR": "failed",
    "UPGRADING": "deploying",
    "INTERRUPTING": "stopping",
}
#: v2 statuses in which a failure cause (``failure_reason``) is shown
V2_FAILED = frozenset({"FAILED", "ERROR"})


def v2_reading(given: str) -> str:
    """The v2 status for a status given in either vocabulary, in any case: v1 names are translated."""
    return V1_TO_V2.get(given.lower(), given.upper())


def v1_reading(given: str, generation: str) -> str:
    """The v1 status of a service of ``generation`` for a status given in either vocabulary.

    A v1-only service keeps any string it is given verbatim (the spec's open status, Q08), except that a v1
    name in another case is folded and an upper-case v2 name is translated. A v2 or both service's v1 reading
    follows its v2 status.
    """
    if generation != "v1":
        v2 = v2_reading(given)
        return V2_TO_V1.get(v2, v2.lower())
    low = given.lower()
    if low in V1_STATUSES:
        return low
    if given.isupper() and given in V2_TO_V1:
        return V2_TO_V1[given]
    return given


def pick_generation(rng: random.Random, mode: str) -> str:
    """The generation of the next generated service in a fleet of ``mode`` (v1, v2 or mixed)."""
    if mode == "v1":
        return "v1"
    if mode == "v2":
        return "v2"
    x = rng.random()
    for edge, generation in _MIXED:
        if x < edge:
            return generation
    return "both"


def initial_v2_status(v1_status: str, rng: random.Random) -> str:
    """The v2 status of a generated service whose v1-style status was drawn as ``v1_status``.

    Sprinkles the v2-only states in: a few running services are UPGRADING (or ERROR), some failures are
    ERROR rather than FAILED, some stops are INTERRUPTING.
    """
    x = rng.random()
    if v1_status == "running":
        return "UPGRADING" if x < 0.03 else "ERROR" if x < 0.04 else "RUNNING"
    if v1_status == "failed":
        return "ERROR" if x < 0.3 else "FAILED"
    if v1_status == "stopping":
        return "INTERRUPTING" if x < 0.25 else "STOPPING"
    return V1_TO_V2.get(v1_status, "STOPPED")
