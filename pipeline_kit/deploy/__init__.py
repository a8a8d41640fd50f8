"""Stage 6, deploy: apply the gated digest, gate it again in production, roll back on failure."""
