"""Import fairchem without the stray CUDA-driver notice of one of its dependencies.

`import fairchem.core` imports nvalchemiops (NVIDIA's neighbour lists), which initialises
NVIDIA Warp at import time; on a machine without a GPU driver Warp's C library prints
"Warp CUDA warning: Could not find or load the NVIDIA CUDA driver. GPU execution will not be
available." straight to file descriptor 2, so no Python warning filter can catch it. matscale
never runs Warp kernels (its graphs come from matscale.models.graph), so the notice only
confuses: `import_fairchem()` does the first import with fd 2 captured and passes every other
line through unchanged.
"""
from __future__ import annotations

import os
import sys
import tempfile
from contextlib import contextmanager
from typing import Iterator

NOTICE = "Warp CUDA warning: Could not find or load the NVIDIA CUDA driver"


@contextmanager
def stderr_without(prefix: str) -> Iterator[None]:
    """Run the block with fd 2 captured; afterwards re-emit its lines except those starting with `prefix`."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable fd 2: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [ln for ln in capture.read().splitlines(keepends=True) if not ln.startswith(prefix.encode())]
            if kept:
                os.write(2, b"".join(kept))


def import_fairchem() -> None:
    """Import fairchem.core once, without Warp's driver notice (see the module docstring)."""
    if "fairchem.core" in sys.modules:
        return
    with stderr_without(NOTICE):
        import fairchem.core  # noqa: F401
