"""A recording stand-in for ``kubectl``: no Kubernetes API server can run on these machines.

It answers the calls the kit makes (apply from stdin, rollout status, get/delete namespaces by
label selector, logs, port-forward), keeps the namespaces it was given in a JSON file, and
records every call with its stdin, so tests can check the sequence and validate the manifests
against Kubernetes' own schemas. ``port-forward`` starts the real example model server on a
free loopback port and prints kubectl's own "Forwarding from" line, so the real gate runs.

Environment: ``KUBECTL_STANDIN_DIR`` (state and calls), ``KUBECTL_STANDIN_ROLLOUT=fail`` (the
rollout times out), ``KUBECTL_STANDIN_WEIGHTS`` (the weights the example server loads).
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
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "MODEL_PATH": os.environ["KUBECTL_STANDIN_WEIGHTS"], "PORT": str(port),
           "HOST": "127.0.0.1", "MODEL_NAME": "llm-service"}  # fmt: skip
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
    stdin = sys.stdin.read() if args[:2] == ["apply", "--filename=-"] else ""
    with (STATE / "calls.jsonl").open("a") as log:
        log.write(json.dumps({"argv": argv, "stdin": stdin}) + "\n")
    namespaces = load()
    if args[:1] == ["apply"]:
        for doc in yaml.safe_load_all(stdin):
            if doc["kind"] == "Namespace":
                namespaces[doc["metadata"]["name"]] = doc["metadata"]
            print(f"{doc['kind'].lower()}/{doc['metadata']['name']} configured")
        save(namespaces)
        return 0
    if args[:2] == ["rollout", "status"]:
        if os.environ.get("KUBECTL_STANDIN_ROLLOUT") == "fail":
            print("error: timed out waiting for the condition", file=sys.stderr)
            return 1
        print(f'deployment "{args[2].split("/", 1)[1]}" successfully rolled out')
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
