"""The Dockerfile doctor: anti-patterns that make model-serving images slow, huge or fragile.

``model`` holds what the rules read and return, ``rules`` the table of rules and ``doctor``
runs them. The checks are grouped by what they look at: ``weights`` (PK001, PK002),
``dependencies`` (PK003), ``pinning`` (PK004), ``image`` (PK005 to PK008: base, packages,
user, context) and ``link`` (PK009); they read RUN instructions through ``shell`` and
``installs``, requirement files and pyproject.toml through ``requirements``, and the build
context through ``context_files``.
"""
