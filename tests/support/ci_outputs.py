"""Reading what the kit writes for CI: GitHub step outputs and GitLab dotenv reports."""

from __future__ import annotations

from pathlib import Path


def parse_github_outputs(text: str) -> dict[str, str]:
    """Read ``$GITHUB_OUTPUT`` as the runner does: ``name=value`` or a heredoc."""
    values: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            body = []
            for inner in lines:
                if inner == delimiter:
                    break
                body.append(inner)
            values[name] = "\n".join(body)
        else:
            name, _, value = line.partition("=")
            values[name] = value
    return values


def parse_dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())
