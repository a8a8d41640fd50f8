"""The example LLM service: an OpenAI-style HTTP server over weights mounted at MODEL_PATH."""
