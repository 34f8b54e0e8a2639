"""One lock per run: `<run_root>/_locks/<run_id>.lock`, honoured by train, resume, sweep, evaluate.

Why outside the run folder: the training loop deletes the folder when a run starts over
(--force), and the lock must outlive that. The lock is an exclusive `flock` on the file
(the OS drops it when the holding process dies, so a stale lock from a killed process is
simply taken over), and the file holds the holder's pid, host and start time so a refusal
can say who holds it: "run X is in progress (pid N)". Where the file system cannot flock
(some network mounts), the pid inside decides: a lock whose pid is dead on this host is taken over.

A process may hand its lock to a child it starts (the sweep starts `matscale train`): it
passes the open descriptor (`pass_fds`) and names it in MATSCALE_RUN_LOCK_FD as
"fd:device:inode"; the child's `run_lock` recognises the inherited lock instead of
refusing. `status(root, run_id)` says whether a run's lock is held right now (for tables).
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from matscale.errors import MatscaleError
from matscale.lifeline import pid_alive

LOCK_DIR = "_locks"
INHERIT_ENV = "MATSCALE_RUN_LOCK_FD"


class RunBusyError(MatscaleError):
    """Another live process holds the run's lock."""

    def __init__(self, run_id: str, holder: dict | None):
        pid = (holder or {}).get("pid")
        who = f"pid {pid}" + (f" on {holder['host']}" if holder.get("host") not in (None, socket.gethostname())
                               else "") if pid else "another process"
        super().__init__(f"run {run_id} is in progress ({who}); wait for it to finish, or stop that process "
                         "and run again (a lock left by a dead process is taken over)")
        self.run_id, self.holder = run_id, holder


def lock_path(run_root: str | os.PathLike, run_id: str) -> Path:
    return Path(run_root) / LOCK_DIR / f"{run_id}.lock"


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None


def _inherited(path: Path) -> int | None:
    """The descriptor of this lock handed down by a parent (MATSCALE_RUN_LOCK_FD), if any."""
    value = os.environ.get(INHERIT_ENV, "")
    try:
        fd, dev, ino = (int(v) for v in value.split(":"))
        st, fst = path.stat(), os.fstat(fd)
    except (ValueError, OSError):
        return None
    return fd if (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino) == (dev, ino) else None


def _write_holder(fd: int) -> None:
    info = json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, info, 0)


def acquire(run_root: str | os.PathLike, run_id: str) -> tuple[int, bool]:
    """(fd, inherited) holding the run's lock, or RunBusyError naming the live holder."""
    path = lock_path(run_root, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _inherited(path)
    if fd is not None:
        _write_holder(fd)
        return fd, True
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
    try:
        for attempt in range(4):  # `status` probes take a shared lock for a moment: retry briefly
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt == 3:
                    raise
                time.sleep(0.05)
    except BlockingIOError:
        os.close(fd)
        raise RunBusyError(run_id, _holder(path)) from None
    except OSError as exc:  # no flock here (ENOLCK/EOPNOTSUPP): decide by the recorded pid
        if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
            os.close(fd)
            raise
        holder = _holder(path)
        if holder and holder.get("host") == socket.gethostname() and holder.get("pid") != os.getpid() \
                and pid_alive(int(holder.get("pid", 0))):
            os.close(fd)
            raise RunBusyError(run_id, holder) from None
    _write_holder(fd)
    return fd, False


def release(fd: int, inherited: bool = False) -> None:
    """Drop the lock (an inherited one stays with the parent, which closes it)."""
    if inherited:
        return
    try:
        os.ftruncate(fd, 0)
    except OSError:
        pass
    os.close(fd)  # closing the last descriptor releases the flock


@contextmanager
def run_lock(run_root: str | os.PathLike, run_id: str, required: bool = True) -> Iterator[int | None]:
    """Hold the run's lock for the `with` block (RunBusyError when another process has it).

    required=False: where no lock file can be made (a read-only share), go on without one (None)."""
    try:
        fd, inherited = acquire(run_root, run_id)
    except RunBusyError:
        raise
    except OSError:
        if required:
            raise
        yield None
        return
    try:
        yield fd
    finally:
        release(fd, inherited)


def inherit_env(fd: int) -> dict[str, str]:
    """Environment entries that let a child started with pass_fds=(fd,) reuse this lock."""
    st = os.fstat(fd)
    return {INHERIT_ENV: f"{fd}:{st.st_dev}:{st.st_ino}"}


def status(run_root: str | os.PathLike, run_id: str) -> dict | None:
    """The holder {pid, host, since} when the run's lock is held right now, else None."""
    path = lock_path(run_root, run_id)
    holder = _holder(path) if path.exists() else None
    if not holder or (holder.get("host") == socket.gethostname() and not pid_alive(int(holder.get("pid", 0)))):
        return None  # released (emptied) or left by a dead process: no need to probe
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(path) or {}
    except OSError:  # no flock: trust a live pid on this host
        holder = _holder(path)
        ok = holder and holder.get("host") == socket.gethostname() and pid_alive(int(holder.get("pid", 0)))
        return holder if ok else None
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
