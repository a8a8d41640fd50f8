"""Tests against real parts: registry, builders, podman, model servers, act, gitlab-ci-local."""
