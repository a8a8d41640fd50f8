"""The test services themselves answer like the real thing (so other tests can trust them)."""

from __future__ import annotations

import json
import urllib.request

from tests.support.services.registry import RegistryServer


def test_registry_serves_the_distribution_api(registry: RegistryServer) -> None:
    with urllib.request.urlopen(f"{registry.url}/v2/", timeout=5) as answer:
        assert answer.status == 200
        assert answer.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    with urllib.request.urlopen(f"{registry.url}/v2/_catalog", timeout=5) as answer:
        assert "repositories" in json.load(answer)
