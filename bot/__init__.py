"""Slack surface: slash-command handlers, Block Kit views, notification delivery (uses ``core`` only)."""
