"""Stage 1, detect: which layers changed between two revisions, and their content keys."""
