"""Adapters over the outside world: the only modules that run processes or speak HTTP."""
