"""``pipeline-kit deploy --image REPO@sha256:...``: the deploy the gate guards.

Render the ``kubernetes`` section's manifests for the digest, apply them server-side, wait for
the rollout, run the smoke gate against the production Service, and roll back when the rollout
or the gate fails. Exit 0 deployed and gated, 1 a failure that was rolled back (or a first
deploy scaled to zero), 2 bad input, 3 no kubectl or no cluster, 130 interrupted.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from pipeline_kit.errors import ExitCode, InputError

if TYPE_CHECKING:
    from pipeline_kit.smoke.gate import SmokeVerdict
    from pipeline_kit.smoke.session import SmokeOptions


@dataclass(frozen=True)
class DeployOptions:
    image: str  # repo@sha256:...
    smoke: (
        SmokeOptions  # config, cwd, environ, format and the gate's flags; url and digest set here
    )
    namespace: str | None = None  # over kubernetes.namespace


def run(options: DeployOptions, out: TextIO, log: TextIO = sys.stderr) -> int:
    import yaml

    from pipeline_kit.adapters.kubectl import Kubectl
    from pipeline_kit.adapters.registry.references import ImageRef
    from pipeline_kit.config.loader import for_run, load_config
    from pipeline_kit.config.service import ServiceSpec
    from pipeline_kit.deploy.rollout import DeploySettings, Target, deploy
    from pipeline_kit.preview.kubernetes import rollout_budget
    from pipeline_kit.render.kubernetes import KubernetesSpec, render
    from pipeline_kit.report import deploy as report
    from pipeline_kit.report.outputs import check_destination, export
    from pipeline_kit.smoke import session as smoke

    gate_options = options.smoke
    check_destination(gate_options.format, gate_options.environ)
    ref = ImageRef.parse(options.image)
    if ref.digest is None:
        raise InputError(
            f"--image {options.image}: a tag is not a deployable reference.",
            hint="Deploy the digest that passed the gate: repo@sha256:... "
            "(the build record has it).",
        )
    image = f"{ref.registry}/{ref.repository}@{ref.digest}"
    config = for_run(
        load_config(gate_options.config_path, gate_options.cwd), gate_options.environ, log
    )
    settings = DeploySettings.from_section(config.section("deploy"), config.where("deploy"))
    workload = KubernetesSpec.from_config(config)
    if options.namespace:
        workload = dataclasses.replace(workload, namespace=options.namespace)
    service = ServiceSpec.from_config(config)

    def dump(replicas: int) -> str:
        spec = dataclasses.replace(workload, replicas=replicas)
        return yaml.safe_dump_all(render(image, service, spec), sort_keys=False,
                                  explicit_start=True)  # fmt: skip

    url = settings.url.format(namespace=workload.namespace, service=workload.name) if (
        settings.url
    ) else None  # fmt: skip
    target = Target(
        namespace=workload.namespace,
        deployment=workload.name,
        budget=settings.rollout_timeout or rollout_budget(service, workload),
        url=url,
    )

    def say(message: str) -> None:
        log.write(f"pipeline-kit deploy: {message}\n")
        log.flush()

    def gate(at: str) -> SmokeVerdict:
        gated = dataclasses.replace(gate_options, url=at, digest=ref.digest, image=image)
        return smoke.gate(gated, log)

    kubectl = Kubectl(settings.context, gate_options.environ)
    outcome = deploy(kubectl, image, dump(workload.replicas), dump(0), target, gate, say)
    if outcome.verdict is not None:
        from pipeline_kit.report import smoke as smoke_report

        smoke_report.write_files(outcome.verdict, gate_options)
    document = report.as_json(outcome)
    if gate_options.format == "json":
        out.write(report.to_json_text(document))
    else:
        dotenv = gate_options.cwd / gate_options.dotenv
        export(gate_options.format, report.outputs(document), environ=gate_options.environ,
               dotenv=dotenv)  # fmt: skip
        out.write(report.as_text(outcome))
    return ExitCode.OK if outcome.passed else ExitCode.VERDICT
