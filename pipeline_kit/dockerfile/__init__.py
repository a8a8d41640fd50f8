"""The Dockerfile model: stages, ARG expansion, .dockerignore, what stages take from the context."""
