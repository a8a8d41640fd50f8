"""Deployment manifests generated from the config, for the digest that passed the gate."""
