"""File-system errors as one line saying what failed and what to do.

A full disk, a `--run-root` that is a file, a symlink loop or a read-only mount are the
user's environment, not bugs: the CLI prints `describe(exc)` as `error: ...` and exits 2
(set MATSCALE_TRACEBACK=1 to get the traceback instead). `ensure_dir` turns the common
"that path is not a folder" cases into a `ConfigError` before anything is written.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path

from matscale.errors import ConfigError

_HINTS = {
    errno.ENOSPC: "the disk is full: free space or point --run-root at another disk, then resume with --resume",
    errno.EDQUOT: "the disk quota is exhausted: free space or point --run-root elsewhere, then resume with --resume",
    errno.EACCES: "no permission: check the folder's owner and mode, or choose another folder",
    errno.EPERM: "operation not permitted: check the folder's owner and mode, or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.ELOOP: "a symbolic link loops back on itself: fix or remove the link",
    errno.ENOTDIR: "a part of the path is a file, not a folder: choose another path",
    errno.EEXIST: "a file is in the way of a folder: move it or choose another path",
    errno.EISDIR: "a folder is where a file was expected: choose another path",
    errno.ENAMETOOLONG: "the path is too long: choose a shorter one",
    errno.EIO: "the storage reported an I/O error: check the disk",
}


def describe(exc: OSError) -> str:
    """'<what failed> <path>: <reason>; <hint>' for an OSError (one line)."""
    where = " ".join(str(p) for p in (exc.filename, exc.filename2) if p is not None)
    reason = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno or -1, "check the path and the disk")
    return f"{where + ': ' if where else ''}{reason}; {hint}"


def ensure_dir(path: str | os.PathLike, what: str = "folder") -> Path:
    """Create folder `path` (and parents); ConfigError when something in the way is not a folder."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        try:
            os.stat(path)
        except OSError as exc:  # e.g. ELOOP: a symbolic link that points back at itself
            raise ConfigError(f"{what} {path}: {describe(exc).split(': ', 1)[-1]}") from None
        raise ConfigError(f"{what} {path} is not a folder (a file is in the way); "
                          "choose another path or move that file") from None
    except OSError as exc:
        raise ConfigError(f"cannot create {what}: {describe(exc)}") from None
    return path
