"""A recording stand-in for ``kubectl``: no Kubernetes API server can run on these machines.

It answers the calls the kit makes (apply from stdin, server-side too, rollout status and undo,
a Deployment's revision and image, get/delete namespaces by label selector, logs,
port-forward), keeps the namespaces and Deployments it was given in JSON files (a revision is
added when the pod template's image changes, and an undo adds one with the template before,
as the Deployment controller does), and records every call with its stdin, so tests can check
the sequence and validate the manifests against Kubernetes' own schemas. ``port-forward``
starts the real example model server on a free loopback port and prints kubectl's own
"Forwarding from" line, so the real gate runs.

Environment: ``KUBECTL_STANDIN_DIR`` (state and calls), ``KUBECTL_STANDIN_ROLLOUT=fail`` (the
rollout times out), ``KUBECTL_STANDIN_UNREADY=DIGEST`` (a rollout of a Deployment whose image
has that digest times out), ``KUBECTL_STANDIN_HANG=DIGEST`` (rollout status of a Deployment
running that digest writes ``rollout.waiting`` and waits to be killed),
``KUBECTL_STANDIN_SLOW=DIGEST`` (a port-forward to a Deployment running that digest serves the
example server with ``RESPONSE_DELAY=2``), ``KUBECTL_STANDIN_FORWARD=fail`` (port-forward
fails), ``KUBECTL_STANDIN_UNREACHABLE=1`` (every call fails as kubectl does without a cluster),
``KUBECTL_STANDIN_WEIGHTS`` (the weights the example server loads).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llm-service"
STATE = Path(os.environ["KUBECTL_STANDIN_DIR"])


def load() -> dict[str, Any]:
    path = STATE / "namespaces.json"
    loaded: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return loaded


def save(namespaces: dict[str, Any]) -> None:
    (STATE / "namespaces.json").write_text(json.dumps(namespaces))


def load_deployments() -> dict[str, Any]:
    """``namespace/name`` -> {revisions: [image per revision, oldest first], replicas}."""
    path = STATE / "deployments.json"
    loaded: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    return loaded


def save_deployments(deployments: dict[str, Any]) -> None:
    (STATE / "deployments.json").write_text(json.dumps(deployments))


def deployment_key(args: list[str]) -> str:
    name = next(a for a in args if a.startswith("deployment/")).split("/", 1)[1]
    return f"{flag(args, 'namespace')}/{name}"


def record_deployment(doc: dict[str, Any], deployments: dict[str, Any]) -> None:
    """A new revision when the template's image changes; replicas as given."""
    key = f"{doc['metadata'].get('namespace', 'default')}/{doc['metadata']['name']}"
    image = doc["spec"]["template"]["spec"]["containers"][0]["image"]
    entry = deployments.setdefault(key, {"revisions": [], "replicas": 1})
    if not entry["revisions"] or entry["revisions"][-1] != image:
        entry["revisions"].append(image)
    entry["replicas"] = doc["spec"].get("replicas", 1)


def current_image(args: list[str]) -> str:
    return str(load_deployments()[deployment_key(args)]["revisions"][-1])


def flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def matches(metadata: dict[str, Any], selector: str) -> bool:
    labels = metadata.get("labels") or {}
    wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
    return all(labels.get(key) == value for key, value in wanted.items())


def forward(args: list[str]) -> int:
    if os.environ.get("KUBECTL_STANDIN_FORWARD") == "fail":
        print("error: unable to forward port because pod is not running. Current status=Pending",
              file=sys.stderr)  # fmt: skip
        return 1
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MODEL_PATH": os.environ["KUBECTL_STANDIN_WEIGHTS"], "PORT": str(port),
           "HOST": "127.0.0.1", "MODEL_NAME": "llm-service"}  # fmt: skip
    slow = os.environ.get("KUBECTL_STANDIN_SLOW")
    service = next(a for a in args if a.startswith("service/")).split("/", 1)[1]
    key = f"{flag(args, 'namespace')}/{service}"
    running = load_deployments().get(key, {}).get("revisions", [""])[-1]
    if slow and running.endswith(slow):
        env["RESPONSE_DELAY"] = "2"
    server = subprocess.Popen(
        [sys.executable, "-m", "server"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    (STATE / "server.pid").write_text(str(server.pid))
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                print("error: the example server did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)

    # Stopped as kubectl is: SIGTERM. The server goes too, and is reaped below.
    signal.signal(signal.SIGTERM, lambda signum, frame: server.terminate())
    print(f"Forwarding from 127.0.0.1:{port} -> 8000", flush=True)
    server.wait()
    return 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--context=")]
    stdin = sys.stdin.read() if args[:1] == ["apply"] and args[-1] == "--filename=-" else ""
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    if os.environ.get("KUBECTL_STANDIN_UNREACHABLE"):
        print("The connection to the server 127.0.0.1:6443 was refused - did you specify the "
              "right host or port?", file=sys.stderr)  # fmt: skip
        return 1
    namespaces = load()
    if args[:1] == ["apply"]:
        deployments = load_deployments()
        for doc in yaml.safe_load_all(stdin):
            if doc["kind"] == "Namespace":
                namespaces[doc["metadata"]["name"]] = doc["metadata"]
            if doc["kind"] == "Deployment":
                record_deployment(doc, deployments)
            verb = "serverside-applied" if "--server-side" in args else "configured"
            print(f"{doc['kind'].lower()}/{doc['metadata']['name']} {verb}")
        save(namespaces)
        save_deployments(deployments)
        return 0
    if args[:2] == ["rollout", "status"]:
        mode = os.environ.get("KUBECTL_STANDIN_ROLLOUT")
        hang = os.environ.get("KUBECTL_STANDIN_HANG")
        if hang and current_image(args).endswith(hang):
            (STATE / "rollout.waiting").write_text(str(os.getpid()))
            signal.pause()  # until the kit's process ends this one
        unready = os.environ.get("KUBECTL_STANDIN_UNREADY")
        if mode == "fail" or (unready and current_image(args).endswith(unready)):
            print("error: timed out waiting for the condition", file=sys.stderr)
            return 1
        print(f'deployment "{args[2].split("/", 1)[1]}" successfully rolled out')
        return 0
    if args[:2] == ["rollout", "undo"]:
        deployments = load_deployments()
        revisions = deployments[deployment_key(args)]["revisions"]
        if len(revisions) < 2:
            print("error: no rollout history found", file=sys.stderr)
            return 1
        revisions.append(revisions[-2])
        save_deployments(deployments)
        print(f"{args[2]} rolled back")
        return 0
    if args[:1] == ["get"] and args[1].startswith("deployment/"):
        entry = load_deployments().get(deployment_key(args))
        if entry is None:
            return 0  # --ignore-not-found: nothing at all
        print(f"{len(entry['revisions'])}\t{entry['revisions'][-1]}", end="")
        return 0
    if args[:2] == ["get", "namespaces"]:
        selector = flag(args, "selector") or ""
        items = [
            {"metadata": {**meta, "name": name}, "status": {"phase": "Active"}}
            for name, meta in namespaces.items()
            if matches(meta, selector)
        ]
        print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        return 0
    if args[:2] == ["delete", "namespaces"]:
        selector = flag(args, "selector") or ""
        for name in [n for n, meta in namespaces.items() if matches(meta, selector)]:
            del namespaces[name]
            print(f'namespace "{name}" deleted')
        save(namespaces)
        return 0
    if args[:1] == ["logs"]:
        print("llm-service: listening on 0.0.0.0:8000")
        return 0
    if args[:1] == ["port-forward"]:
        return forward(args)
    print(f"kubectl stand-in: unexpected call {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
