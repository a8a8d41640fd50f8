"""pipeline-kit: a CI kit for LLM inference services shipped as container images."""

__version__ = "0.1.0"
# The name the kit is published under on PyPI (the command and the import name are pipeline-kit
# and pipeline_kit): pyproject.toml's [project] name, which tests hold to this one.
DISTRIBUTION = "llm-pipeline-kit"
