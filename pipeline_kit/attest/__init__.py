"""Attestations: provenance and an SBOM on every digest the kit publishes, and their check."""
