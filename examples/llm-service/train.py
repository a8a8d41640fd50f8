"""Train the example's model on the bundled text: python train.py [OUT_DIR] (default: models/).

The weights are an artifact of their own: mount OUT_DIR at MODEL_PATH; never copy it into
the image (the .dockerignore keeps it out).
"""

from __future__ import annotations

import sys
from pathlib import Path

from server.model import WEIGHTS, train

HERE = Path(__file__).resolve().parent


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "models"
    train((HERE / "corpus" / "sonnets.txt").read_text(), out)
    print(f"wrote {out / WEIGHTS} and the tokenizer")


if __name__ == "__main__":
    main()
