"""Prometheus metrics of every layer, in one place so ``/metrics`` and the docs list them all.

Process-wide (prometheus-client's default registry): one process serves one bot. Labels are bounded sets
(routes, status codes, statuses, outcomes, tool names), never service names or ids.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

API_REQUESTS = Counter(
    "services_bot_api_requests",
    "ModelArts/IAM HTTP requests by route and HTTP status (0 = no answer: timeout, refused).",
    ["target", "route", "code"],
)
API_LATENCY = Histogram(
    "services_bot_api_request_seconds",
    "ModelArts/IAM request latency, per attempt.",
    ["route"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POLLS = Counter("services_bot_polls", "Watcher polls per target, by mode and outcome.", ["target", "mode", "outcome"])
POLL_SECONDS = Histogram(
    "services_bot_poll_seconds",
    "Duration of one watcher poll of every target.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
LAST_POLL_SUCCESS = Gauge(
    "services_bot_last_successful_poll_timestamp_seconds", "When each target was last read in full.", ["target"]
)
TRANSITIONS = Counter("services_bot_transitions", "Status transitions observed, by new status.", ["to_status", "kind"])
DELIVERIES = Counter(
    "services_bot_deliveries",
    "Slack messages for alerts and notices, by outcome (ok, retry, held: the token is refused, failed).",
    ["outcome"],
)
UNDELIVERED = Gauge(
    "services_bot_delivery_undelivered", "Alerts and notices queued for Slack, not delivered yet (pending, in flight)."
)
OLDEST_UNDELIVERED = Gauge(
    "services_bot_delivery_oldest_undelivered_seconds", "How long the oldest undelivered alert has waited (0: none)."
)
SLACK_ERRORS = Counter(
    "services_bot_slack_errors", "Errors from the Slack Web API when delivering, by error.", ["error"]
)
COMMAND_SECONDS = Histogram(
    "services_bot_slack_answer_seconds",
    "Time to answer a slash command or a button (after the ack), by kind and outcome.",
    ["kind", "outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
MCP_TOOL_CALLS = Counter(
    "services_bot_mcp_tool_calls", "MCP tool calls by tool and outcome (ok, error).", ["tool", "outcome"]
)
