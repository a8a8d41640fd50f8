"""``pipeline-kit init``: a repository's config from its Dockerfile, and the kit in its CI."""
