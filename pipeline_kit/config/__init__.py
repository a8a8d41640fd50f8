"""pipeline-kit.yaml: its shipped schema, the loader, and the values stages share."""
