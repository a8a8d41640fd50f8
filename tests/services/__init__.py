"""Real servers the tests run on loopback: a registry, and later a token endpoint and a proxy."""
