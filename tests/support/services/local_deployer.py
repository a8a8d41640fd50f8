"""A deploy tool of the kind the ``command`` provider drives (helm, a PaaS CLI), for real.

``up NAME PORT WEIGHTS EXPIRES`` starts the example model server on 127.0.0.1:PORT in the
background and returns; ``down`` stops it (and succeeds when it is already gone); ``status``
exits 0 while it runs; ``list`` prints the JSON list the kit reads; ``logs`` prints its log.
State lives in the directory named by DEPLOYER_STATE; every call is appended to calls.log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llm-service"
STATE = Path(os.environ.get("DEPLOYER_STATE", "."))


def running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's parent here may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def up(name: str, port: str, weights: str, expires: str) -> int:
    log = (STATE / f"{name}.log").open("wb")
    env = {**os.environ, "MODEL_PATH": weights, "PORT": port, "HOST": "127.0.0.1",
           "MODEL_NAME": "llm-service"}  # fmt: skip
    server = subprocess.Popen(
        [sys.executable, "-m", "server"], cwd=EXAMPLE, env=env, stdin=subprocess.DEVNULL,
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:  # a deploy tool returns once the service answers at all (not yet ready)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health/live", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                print(f"deployer: {name} did not start", file=sys.stderr)
                return 1
            time.sleep(0.05)
    record = {"name": name, "pid": server.pid, "expires": expires,
              "url": f"http://127.0.0.1:{port}"}  # fmt: skip
    (STATE / f"{name}.json").write_text(json.dumps(record))
    print(f"deployer: {name} started (pid {server.pid})", file=sys.stderr)
    return 0


def down(name: str) -> int:
    path = STATE / f"{name}.json"
    if not path.exists():
        return 0
    pid = json.loads(path.read_text())["pid"]
    if running(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    path.unlink()
    return 0


def main(argv: list[str]) -> int:
    with (STATE / "calls.log").open("a") as calls:
        calls.write(" ".join(argv) + f" env-name={os.environ.get('PIPELINE_KIT_PREVIEW_NAME')}\n")
    verb, *args = argv
    if verb == "up":
        return up(*args)
    if verb == "down":
        return down(*args)
    if verb == "status":
        path = STATE / f"{args[0]}.json"
        return 0 if path.exists() and running(json.loads(path.read_text())["pid"]) else 1
    if verb == "list":
        print(json.dumps([json.loads(p.read_text()) for p in sorted(STATE.glob("*.json"))]))
        return 0
    if verb == "logs":
        print((STATE / f"{args[0]}.log").read_text())
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
