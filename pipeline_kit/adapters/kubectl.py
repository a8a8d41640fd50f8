"""kubectl: apply manifests, wait for a rollout and undo it, list and delete preview namespaces.

Command lines are pure functions (tested as a table, and their flags against the real
kubectl's help where one is installed). The cluster and credentials come from kubectl's own
configuration (``KUBECONFIG``, ``--context``), never from argv secrets.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pipeline_kit.adapters.process import background, run

_FORWARDING = re.compile(r"^Forwarding from 127\.0\.0\.1:(\d+) ->")
PORT_FORWARD_READY_S = 60.0


def selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{name}={value}" for name, value in sorted(labels.items()))


def _kubectl(context: str | None) -> list[str]:
    return ["kubectl", f"--context={context}"] if context else ["kubectl"]


def apply_argv(context: str | None) -> list[str]:
    """Manifests come on stdin: what is applied is exactly what was rendered and validated."""
    return [*_kubectl(context), "apply", "--filename=-"]


def server_side_apply_argv(context: str | None) -> list[str]:
    """Server-side apply under the kit's own field manager: fields other managers own (an
    autoscaler's replicas) are theirs, and a conflict is an error, not an overwrite."""
    return [*_kubectl(context), "apply", "--server-side", "--field-manager=pipeline-kit",
            "--filename=-"]  # fmt: skip


def revision_argv(context: str | None, namespace: str, deployment: str) -> list[str]:
    """The Deployment's revision annotation and its first container's image, a tab between;
    nothing at all when there is no such Deployment."""
    revision = r"{.metadata.annotations.deployment\.kubernetes\.io/revision}"
    image = "{.spec.template.spec.containers[0].image}"
    return [
        *_kubectl(context),
        "get",
        f"deployment/{deployment}",
        f"--namespace={namespace}",
        "--ignore-not-found",
        f'--output=jsonpath={revision}{{"\\t"}}{image}',
    ]


def undo_argv(context: str | None, namespace: str, deployment: str) -> list[str]:
    """Back to the revision before the current one (a new revision with the old template)."""
    return [*_kubectl(context), "rollout", "undo", f"deployment/{deployment}",
            f"--namespace={namespace}"]  # fmt: skip


def rollout_argv(context: str | None, namespace: str, deployment: str, seconds: int) -> list[str]:
    return [
        *_kubectl(context),
        "rollout",
        "status",
        f"deployment/{deployment}",
        f"--namespace={namespace}",
        f"--timeout={seconds}s",
    ]


def list_namespaces_argv(context: str | None, labels: Mapping[str, str]) -> list[str]:
    return [*_kubectl(context), "get", "namespaces", f"--selector={selector(labels)}", "-o", "json"]


def delete_namespaces_argv(context: str | None, labels: Mapping[str, str]) -> list[str]:
    """By label, never by name alone: only a namespace the kit made in this scope can go.
    ``--wait=false``: a cancelled job has seconds left, and the namespace goes on its own."""
    return [
        *_kubectl(context),
        "delete",
        "namespaces",
        f"--selector={selector(labels)}",
        "--ignore-not-found",
        "--wait=false",
    ]


def logs_argv(context: str | None, namespace: str, deployment: str, lines: int) -> list[str]:
    return [
        *_kubectl(context),
        "logs",
        f"deployment/{deployment}",
        f"--namespace={namespace}",
        "--all-containers",
        f"--tail={lines}",
    ]


def port_forward_argv(context: str | None, namespace: str, service: str, port: int) -> list[str]:
    """A random local port on loopback to the Service's ``port``."""
    return [
        *_kubectl(context),
        "port-forward",
        f"--namespace={namespace}",
        "--address=127.0.0.1",
        f"service/{service}",
        f":{port}",
    ]


class Kubectl:
    def __init__(
        self, context: str | None = None, environ: Mapping[str, str] | None = None
    ) -> None:
        self.context = context
        self.env = dict(environ or {})  # KUBECONFIG and PATH, as the caller sees them

    def apply(self, manifests: str) -> str:
        return run(apply_argv(self.context), input=manifests.encode(), env=self.env).stdout.decode()

    def apply_server_side(self, manifests: str) -> str:
        argv = server_side_apply_argv(self.context)
        return run(argv, input=manifests.encode(), env=self.env).stdout.decode()

    def revision(self, namespace: str, deployment: str) -> tuple[int | None, str | None]:
        """The Deployment's current revision and image; (None, None) when there is none yet."""
        out = run(revision_argv(self.context, namespace, deployment), env=self.env).stdout
        number, _, image = out.decode().strip().partition("\t")
        return (int(number) if number.isdigit() else None), (image.strip() or None)

    def undo(self, namespace: str, deployment: str) -> None:
        run(undo_argv(self.context, namespace, deployment), env=self.env)

    def rollout_status(self, namespace: str, deployment: str, seconds: int) -> None:
        run(rollout_argv(self.context, namespace, deployment, seconds), env=self.env)

    def namespaces(self, labels: Mapping[str, str]) -> list[dict[str, Any]]:
        out = run(list_namespaces_argv(self.context, labels), env=self.env).stdout
        items = json.loads(out or b"{}").get("items") or []
        return [item for item in items if isinstance(item, dict)]

    def delete_namespaces(self, labels: Mapping[str, str]) -> list[str]:
        """The namespaces deleted (kubectl prints ``namespace "NAME" deleted`` for each)."""
        out = run(delete_namespaces_argv(self.context, labels), env=self.env).stdout.decode()
        return re.findall(r'namespace "([^"]+)" deleted', out)

    def logs(self, namespace: str, deployment: str, lines: int) -> str:
        proc = run(logs_argv(self.context, namespace, deployment, lines), env=self.env, check=False)
        return (proc.stdout + proc.stderr).decode(errors="replace")

    @contextlib.contextmanager
    def port_forward(self, namespace: str, service: str, port: int) -> Iterator[int]:
        """The local port, while the block runs."""

        def local_port(line: str) -> int | None:
            match = _FORWARDING.match(line)
            return int(match.group(1)) if match else None

        argv = port_forward_argv(self.context, namespace, service, port)
        with background(
            argv, ready=local_port, timeout=PORT_FORWARD_READY_S, env=self.env
        ) as local:
            yield local
