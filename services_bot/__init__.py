"""services-bot: the command line and the one place that wires configuration to clients to surfaces."""
