"""Switchable deviations from the documented shapes (spec/quirks.md), used to prove a client survives them.

All switches are off by default: the emulator then emits exactly the documented shapes. Each switch names
the quirk whose evidence it reproduces.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from services_bot.emulator.generations import FLEET_GENERATIONS
from services_bot.emulator.query import PagingRules
from services_bot.emulator.settings import OFFSET_MODES

#: the path generations one can switch off (``missing_generation``)
API_GENERATIONS = tuple(g for g in FLEET_GENERATIONS if g != "mixed")


@dataclass
class Quirks:
    """The current quirk switches. ``offset_mode`` is Q24; every other field is a boolean switch."""

    offset_mode: str = "page"
    numbers_as_strings: bool = False  # Q03: counters and progress as strings on /services
    config_as_string: bool = False  # details `config` as a JSON-encoded string
    workspace_id_as_number: bool = False  # Q01: the default workspace as the number 0
    publish_at_seconds: bool = False  # Q02: publish_at as 10-digit seconds
    float_numbers: bool = False  # Q04: integer fields as 1.0-style floats
    sparse: bool = False  # Q18: only the fields the spec examples show
    missing_count: bool = False  # Q26: no `count` in the list envelope
    missing_total_count: bool = False  # a server that gives no `total_count` at all: paging must still end
    unknown_fields: bool = False  # unknown top-level and nested fields
    legacy_error_200: bool = False  # Q33: legacy errors with HTTP 200 + is_success false
    sample_collection_bool: bool = False  # Q05: is_opened_sample_collection as a JSON boolean
    ignore_sort_by: bool = False  # Q12: the SDK's sort_by knows no transition_at; answer in publish_at order
    # paging as servers other than the v1 documents have it (v2-list-services.md, "Paging"):
    max_limit: int | None = None  # rows served per page at most, whatever `limit` asks (v2 caps at 500)
    offset_multiple_of_limit: bool = False  # 400 unless offset is a multiple of limit (the v2 rule)
    offset_past_end_400: bool = False  # 400 for an offset that starts past the last match
    result_window: int | None = None  # rows past this index are never served, though total_count counts them
    request_id_in_body: bool = False  # no X-Request-Id header; error bodies carry `request_id` instead
    error_message_key: bool = False  # error bodies say `error_message`, not `error_msg` (an older ModelArts API)
    count_is_page_size: bool = False  # `count` is the `limit` asked for, not the rows on the page (v2's L1 reading)
    # "v1" or "v2": that generation's paths answer the gateway's 404 for an API not published in the region;
    # false (or null) when both are there, off like every other switch
    missing_generation: str | bool = False

    #: switches that change how a list row is encoded (changing one invalidates the row caches)
    ROW_FIELDS = (
        "numbers_as_strings",
        "workspace_id_as_number",
        "publish_at_seconds",
        "float_numbers",
        "sparse",
        "unknown_fields",
        "sample_collection_bool",
    )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def paging_rules(self) -> PagingRules:
        """The paging switches, as the list query applies them."""
        return PagingRules(
            offset_mode=self.offset_mode,
            max_limit=self.max_limit,
            offset_multiple_of_limit=self.offset_multiple_of_limit,
            offset_past_end_400=self.offset_past_end_400,
            result_window=self.result_window,
        )

    #: switches that are a count (a positive integer) or null, not a boolean
    COUNT_FIELDS = ("max_limit", "result_window")

    def merge(self, body: dict[str, Any]) -> bool:
        """Validate and apply ``body``; returns True if a row-shaping switch changed.

        Raises ``ValueError`` with a clear message for an unknown name or a wrong type, leaving the quirks
        unchanged, so a typo in a test does not silently test nothing.
        """
        known = {f.name for f in fields(self)}
        for key, value in body.items():
            if key not in known:
                raise ValueError(f"unknown quirk {key!r}; known: {', '.join(sorted(known))}")
            if key == "offset_mode":
                if value not in OFFSET_MODES:
                    raise ValueError(f"offset_mode must be one of {', '.join(OFFSET_MODES)}")
            elif key == "missing_generation":
                if value not in (None, False, *API_GENERATIONS):
                    raise ValueError(f"missing_generation must be one of {', '.join(API_GENERATIONS)}, false or null")
            elif key in self.COUNT_FIELDS:
                if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                    raise ValueError(f"quirk {key!r} must be a positive integer or null")
            elif not isinstance(value, bool):
                raise ValueError(f"quirk {key!r} must be true or false")
        before = tuple(getattr(self, k) for k in self.ROW_FIELDS)
        for key, value in body.items():
            setattr(self, key, False if key == "missing_generation" and value is None else value)
        return before != tuple(getattr(self, k) for k in self.ROW_FIELDS)
