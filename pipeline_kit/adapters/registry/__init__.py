"""The OCI distribution API: references, the client, its transport, host-bound credentials."""
