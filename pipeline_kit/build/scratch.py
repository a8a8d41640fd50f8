"""Private working directories for files that hold credentials (a builder's docker config, a
preview's authfile): never inside the checkout or the build context, where an image or a
commit could take them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from pipeline_kit.errors import EnvironmentFault


@contextlib.contextmanager
def scratch_dir(prefix: str, *keep_out: Path) -> Iterator[Path]:
    """A new 0700 directory under the system's temporary directory, removed afterwards.

    Python falls back to the working directory when no usual temporary directory is writable
    (a Kaniko image has no ``/tmp``): that is refused when it lies in one of ``keep_out``.
    """
    import tempfile

    base = Path(tempfile.gettempdir()).resolve()
    for place in keep_out:
        place = place.resolve()
        if base == place or place in base.parents:
            raise EnvironmentFault(
                f"the temporary directory {base} is inside {place}: registry credentials "
                "written there could reach the image or the repository.",
                hint="Set TMPDIR to a writable directory outside the checkout.",
            )
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as tmp:
        yield Path(tmp)
