"""``pipeline-kit verify IMAGE@DIGEST``: the digest carries consistent provenance and an SBOM."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from pipeline_kit.errors import ExitCode, InputError


@dataclass(frozen=True)
class VerifyOptions:
    image: str  # registry/repository@sha256:...
    insecure_registries: tuple[str, ...] = ()
    format: str = "text"
    environ: Mapping[str, str] = field(default_factory=dict)


def run(options: VerifyOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    """0 when the digest has a provenance and an SBOM about it, intact; 1 (a verdict) when
    one is missing or anything attached is inconsistent."""
    from pipeline_kit.adapters.registry.client import RegistryClient
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.attest.verify import verify
    from pipeline_kit.report.verify import as_text

    ref = ImageRef.parse(options.image)
    if ref.digest is None:
        raise InputError(
            f"{options.image}: verify checks an image by digest.",
            hint="Give repository@sha256:... (the build's `image` output).",
        )
    client = RegistryClient.connect(ref.registry, options.environ, options.insecure_registries, log)
    if client.head_manifest(ref.repository, ref.digest) is None:
        raise InputError(
            f"{options.image}: no such manifest.",
            hint="Check the repository and the digest.",
        )
    result = verify(client, ref.repository, ref.digest)
    if options.format == "json":
        out.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        out.write(as_text(result))
    return ExitCode.OK if result.passed else ExitCode.VERDICT
