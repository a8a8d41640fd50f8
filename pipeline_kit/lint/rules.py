"""The rules of the Dockerfile doctor, keyed by id; the CLI help and the docs read this table."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from pipeline_kit.lint import dependencies, image, link, pinning, weights
from pipeline_kit.lint.model import Hit, LintInput, Severity

Check = Callable[[LintInput], Iterable[Hit]]


@dataclass(frozen=True)
class Rule:
    id: str  # PK001: stable, what `lint.disable` and CI annotations name
    name: str  # weights-in-image: what a person remembers
    severity: Severity
    check: Check
    fix: str  # one sentence saying what to do, unless the check knows a sharper one
    doc: str  # one line for the rule table


_RULES = (
    Rule(
        "PK001",
        "weights-in-image",
        Severity.ERROR,
        weights.weights_in_image,
        "Mount the weights at run time (MODEL_PATH on a volume, or an initContainer that "
        "fetches them) and exclude them in .dockerignore.",
        "Model weights reach an image: a COPY/ADD names a weights file, or a copied directory "
        "(or a part of a bind mount that a RUN copies out) holds weights or files over "
        "lint.max_file_mb that .dockerignore does not exclude; .git and bind mounts are not "
        "image content.",
    ),
    Rule(
        "PK002",
        "weights-downloaded-at-build",
        Severity.ERROR,
        weights.weights_downloaded,
        "Fetch the weights when the container starts (an initContainer, or the server "
        "downloading to a mounted MODEL_PATH), not in a RUN.",
        "The build downloads weights: ADD of a weights file or hub URL, or a RUN with "
        "from_pretrained, snapshot_download, hf_hub_download, SentenceTransformer(...), "
        "vLLM's LLM(...), huggingface-cli/hf download, ollama pull, text-generation-server "
        "download-weights, infinity_emb --preload-only, git lfs pull, or curl/wget of weights "
        "or huggingface.co.",
    ),
    Rule(
        "PK003",
        "code-before-deps",
        Severity.ERROR,
        dependencies.code_before_deps,
        "Copy the manifests (requirements.txt, or pyproject.toml and its lock) first, install "
        "the dependencies, then copy the code.",
        "The code (the whole context or a directory) is copied before a dependency install in "
        "the same stage chain, so every code change reinstalls the dependencies.",
    ),
    Rule(
        "PK004",
        "unpinned-dependencies",
        Severity.WARNING,
        pinning.unpinned_dependencies,
        "Pin every dependency to an exact version (==) or install from a lock file.",
        "An install reads an unpinned dependency: a line without ==/===/@ URL/--hash in a "
        "requirements file it installs (-r/-c includes followed), a bare package name, the "
        "local project's unpinned pyproject.toml dependencies with nothing pinned installed "
        "before, or poetry/uv/pdm/pipenv, npm/yarn/pnpm or cargo without its lock file.",
    ),
    Rule(
        "PK005",
        "base-image-not-pinned",
        Severity.WARNING,
        image.base_image_not_pinned,
        "Pin the image by digest (image:tag@sha256:...).",
        "FROM an external image, COPY --from=image or RUN --mount from=image without an "
        "@sha256: digest (naming the ARG the reference came from).",
    ),
    Rule(
        "PK006",
        "apt-hygiene",
        Severity.WARNING,
        image.apt_hygiene,
        "Use apt-get install --no-install-recommends and remove /var/lib/apt/lists/* in the "
        "same RUN.",
        "apt-get/apt install without --no-install-recommends, or a RUN that fetches the "
        "package lists (apt-get update, add-apt-repository) without removing "
        "/var/lib/apt/lists (unless it cache-mounts /var/lib/apt or /var/cache/apt), in a "
        "stage a final image is made of.",
    ),
    Rule(
        "PK007",
        "runs-as-root",
        Severity.WARNING,
        image.runs_as_root,
        "Create an unprivileged user and switch to it with USER before CMD.",
        "The target stage's effective USER is unset, root or 0 (inherited through FROM "
        "stages), or a non-root USER is given passwordless sudo.",
    ),
    Rule(
        "PK008",
        "no-dockerignore",
        Severity.WARNING,
        image.no_dockerignore,
        "Add a .dockerignore that excludes weights, caches, .git and docs.",
        "The build context has neither a .dockerignore nor a <Dockerfile>.dockerignore.",
    ),
    Rule(
        "PK009",
        "code-copy-without-link",
        Severity.WARNING,
        link.code_copy_without_link,
        "Use COPY --link in the code stage.",
        "With BuildKit as the builder (build.builder or lint --builder), a COPY in the code "
        "layer (its stage, from the line the layer starts at) without --link and with no RUN "
        "after it on the way to the target: each code change then pulls the layers below it "
        "(5.5 s vs 0.20 s with a 1 GiB deps layer).",
    ),
)

RULES: dict[str, Rule] = {rule.id: rule for rule in _RULES}
