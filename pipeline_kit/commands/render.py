"""``pipeline-kit render kubernetes``: the production manifests for a tested digest."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pipeline_kit.errors import ExitCode


@dataclass(frozen=True)
class RenderOptions:
    config_path: Path | None
    cwd: Path
    image: str
    namespace: str | None = None
    output: Path | None = None  # write the manifests there instead of to ``out``


def run(options: RenderOptions, out: TextIO) -> int:
    import dataclasses

    import yaml

    from pipeline_kit.config.loader import load_config
    from pipeline_kit.config.service import ServiceSpec
    from pipeline_kit.render.kubernetes import KubernetesSpec, render

    config = load_config(options.config_path, options.cwd)
    spec = KubernetesSpec.from_config(config)
    if options.namespace:
        spec = dataclasses.replace(spec, namespace=options.namespace)
    manifests = render(options.image, ServiceSpec.from_config(config), spec)
    text = yaml.safe_dump_all(manifests, sort_keys=False, explicit_start=True)
    if options.output is None:
        out.write(text)
    else:
        from pipeline_kit.adapters.checkout import write_file

        write_file(options.cwd / options.output, text, root=options.cwd)
    return ExitCode.OK
