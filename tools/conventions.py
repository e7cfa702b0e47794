"""What every tool shares: read-only annotations, a title, a clean description, structured output, and a
result whose text carries the answer (``tools.rendering``). ``register`` is the one way tools are added, so a
new tool cannot forget a convention; ``tests/test_mcp_tools.py`` checks them across all tools."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel
from services_bot.core.errors import ServicesBotError

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=True)
F = TypeVar("F", bound=Callable[..., Any])


def at_most(chars: int) -> dict[str, Any]:
    """``maxLength`` in a string argument's schema, so agents see the bound; ``tools.arguments`` enforces it
    with an error that names the argument and quotes only a prefix."""
    return {"maxLength": chars}


def register(server: MCPServer, *, title: str) -> Callable[[F], F]:
    """Add ``fn`` as a read-only tool with ``title`` and its docstring, dedented, as the description."""

    def decorator(fn: F) -> F:
        server.add_tool(
            fn,
            title=title,
            description=inspect.cleandoc(fn.__doc__ or ""),
            annotations=READ_ONLY,
            structured_output=True,
        )
        return fn

    return decorator


def answer(data: BaseModel, text: str, always: tuple[str, ...] = ()) -> CallToolResult:
    """Structured content without nulls (except the fields in ``always``, which a client pages on) and the
    text that carries the same answer."""
    structured = data.model_dump(mode="json", exclude_none=True)
    structured.update({key: getattr(data, key) for key in always})
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=structured)


def tool_error(exc: ServicesBotError) -> ToolError:
    return ToolError(exc.user_text())
