"""The CI run the kit is in: its context, how far it is trusted, log groups and signals."""
