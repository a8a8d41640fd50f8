"""Renderers: turn results into text, JSON and CI-specific formats. No command logic."""
