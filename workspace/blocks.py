"""Block Kit checks that Slack enforces with ``invalid_blocks``, so a view that Slack would refuse fails here
too instead of passing every local test. Only documented limits are checked; unknown block types pass."""

from __future__ import annotations

import secrets
from typing import Any

MAX_BLOCKS = 50
TEXT_TYPES = ("plain_text", "mrkdwn")


class BlockError(ValueError):
    """Why Slack would answer ``invalid_blocks``."""


def _text(obj: Any, where: str, limit: int, *, plain_only: bool = False) -> None:
    if not isinstance(obj, dict) or obj.get("type") not in TEXT_TYPES or not isinstance(obj.get("text"), str):
        raise BlockError(f"{where} must be a text object with type plain_text or mrkdwn and a string text")
    if plain_only and obj["type"] != "plain_text":
        raise BlockError(f"{where} must be plain_text")
    if not obj["text"]:
        raise BlockError(f"{where} must not be empty")
    if len(obj["text"]) > limit:
        raise BlockError(f"{where} is longer than {limit} characters")


def _element(element: Any, where: str, action_ids: set[str]) -> None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        raise BlockError(f"{where} must be an object with a type")
    action_id = element.get("action_id")
    if action_id is not None:
        if not isinstance(action_id, str) or not action_id or len(action_id) > 255:
            raise BlockError(f"{where}.action_id must be a string of 1 to 255 characters")
        if action_id in action_ids:
            raise BlockError(f"{where}.action_id {action_id!r} is already used in this block")
        action_ids.add(action_id)
    if element["type"] == "button":
        _text(element.get("text"), f"{where}.text", 75, plain_only=True)
        value = element.get("value")
        if value is not None and (not isinstance(value, str) or len(value) > 2000):
            raise BlockError(f"{where}.value must be a string of at most 2000 characters")
        style = element.get("style")
        if style is not None and style not in ("primary", "danger"):
            raise BlockError(f"{where}.style must be primary or danger")


def validate_blocks(blocks: list[Any]) -> None:
    """Raise ``BlockError`` for what Slack would reject."""
    if len(blocks) > MAX_BLOCKS:
        raise BlockError(f"more than {MAX_BLOCKS} blocks")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"blocks[{i}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise BlockError(f"{where} must be an object with a type")
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id or len(block_id) > 255:
                raise BlockError(f"{where}.block_id must be a string of 1 to 255 characters")
            if block_id in block_ids:
                raise BlockError(f"{where}.block_id {block_id!r} is not unique")
            block_ids.add(block_id)
        kind = block["type"]
        action_ids: set[str] = set()
        if kind == "section":
            if "text" not in block and "fields" not in block:
                raise BlockError(f"{where} needs text or fields")
            if "text" in block:
                _text(block["text"], f"{where}.text", 3000)
            fields = block.get("fields")
            if fields is not None:
                if not isinstance(fields, list) or not fields or len(fields) > 10:
                    raise BlockError(f"{where}.fields must hold 1 to 10 text objects")
                for j, item in enumerate(fields):
                    _text(item, f"{where}.fields[{j}]", 2000)
            if "accessory" in block:
                _element(block["accessory"], f"{where}.accessory", action_ids)
        elif kind == "header":
            _text(block.get("text"), f"{where}.text", 150, plain_only=True)
        elif kind == "actions":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > 25:
                raise BlockError(f"{where}.elements must hold 1 to 25 elements")
            for j, element in enumerate(elements):
                _element(element, f"{where}.elements[{j}]", action_ids)
        elif kind == "context":
            elements = block.get("elements")
            if not isinstance(elements, list) or not elements or len(elements) > 10:
                raise BlockError(f"{where}.elements must hold 1 to 10 elements")
            for j, element in enumerate(elements):
                if isinstance(element, dict) and element.get("type") in TEXT_TYPES:
                    _text(element, f"{where}.elements[{j}]", 3000)
                elif not isinstance(element, dict) or element.get("type") != "image":
                    raise BlockError(f"{where}.elements[{j}] must be a text object or an image")


def buttons(blocks: list[dict[str, Any]] | None) -> list[tuple[str | None, dict[str, Any]]]:
    """Every interactive element of a message with its block_id, in display order."""
    found: list[tuple[str | None, dict[str, Any]]] = []
    for block in blocks or []:
        if not isinstance(block, dict):
            continue
        block_id = block.get("block_id")
        accessory = block.get("accessory")
        if isinstance(accessory, dict) and accessory.get("action_id"):
            found.append((block_id, accessory))
        elements = block.get("elements") if block.get("type") == "actions" else None
        for element in elements if isinstance(elements, list) else []:
            if isinstance(element, dict) and element.get("action_id"):
                found.append((block_id, element))
    return found


def with_block_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Slack gives every block without a ``block_id`` a random one, and click payloads carry it."""
    return [b if b.get("block_id") else {**b, "block_id": secrets.token_urlsafe(4)} for b in blocks]
