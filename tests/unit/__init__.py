"""Fast tests: the kit's logic against real git and files, no registry, builder or runner."""
