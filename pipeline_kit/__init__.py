"""pipeline-kit: a CI kit for LLM inference services shipped as container images."""

__version__ = "0.1.0"
