"""The OCI distribution API: references, the client, host-bound credentials."""
