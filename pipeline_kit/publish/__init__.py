"""Stage 3, publish: the registry side of a build: push, retag, promote, tags, cache clean-up."""
