"""MCP surface: the MCP server, its tools, resources and prompts (uses ``core`` only)."""
