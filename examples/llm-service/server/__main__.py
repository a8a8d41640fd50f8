"""Run the model server: MODEL_PATH (weights dir), PORT, HOST, MODEL_NAME from the environment;
RESPONSE_DELAY (seconds added to each completion) and MAX_IN_FLIGHT (completions at once, beyond
which it answers 503) make it a slower or overloaded build, to see the gate catch one."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from server.app import ModelState, make_server


def main() -> None:
    state = ModelState(
        Path(os.environ.get("MODEL_PATH", "/models")),
        os.environ.get("MODEL_NAME", "llm-service"),
        delay=float(os.environ.get("RESPONSE_DELAY") or 0),
        max_in_flight=int(os.environ.get("MAX_IN_FLIGHT") or 0),
    )
    server = make_server(os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8000")), state)
    # As PID 1 in a container, SIGTERM is ignored unless handled: stop serving, exit cleanly,
    # so a rollout or a preview teardown does not wait out its grace period.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    # Listen first, so liveness answers while the weights load.
    state.start_loading()
    print(f"llm-service: listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
