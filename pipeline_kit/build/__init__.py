"""Stage 2, build: the plan (retag, append or a builder) and the builders behind one Protocol."""

STRATEGIES = ("auto", "builder", "append")  # --strategy and build.strategy: the plan's order
