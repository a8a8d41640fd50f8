"""Helpers the tests share: real git repositories, services on loopback, images, CI
contexts, and where the repository's files are."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
SERVICES = Path(__file__).resolve().parent / "services"
