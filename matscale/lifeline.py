"""Child processes that die with their sweep, and SIGTERM that ends a run cleanly.

A sweep starts each training run as a child process in its own process group (so the sweep
can stop the child's whole tree) with MATSCALE_PARENT_PID set. `die_with_parent()`, called
by `matscale train` at start-up, then makes sure the run does not outlive the sweep even if
the sweep is SIGKILLed: on Linux the kernel sends SIGTERM when the parent exits
(PR_SET_PDEATHSIG via prctl), and everywhere a daemon thread checks every
WATCH_SECONDS that the sweep is still alive (this also covers grandchildren such as a
papermill kernel, whose own parent is not the sweep).

`terminate_as_interrupt()` turns SIGTERM/SIGHUP into KeyboardInterrupt in the main thread,
so the training loop records the run as failed with error "interrupted (...)" — resumable
with --resume, never left "running" — instead of dying silently.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
import time
from contextlib import contextmanager

PARENT_ENV = "MATSCALE_PARENT_PID"
WATCH_SECONDS = 1.0
PR_SET_PDEATHSIG = 1
_installed: int | None = None  # the watched pid, once per process


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (one that we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pdeathsig(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent exits; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(sig: int = signal.SIGTERM) -> int | None:
    """Arrange to receive `sig` when the process named in MATSCALE_PARENT_PID is gone; its pid or None.

    Idempotent (one watcher per process): `matscale train` calls it at start-up and `train()`
    again, which covers a notebook kernel run by papermill for a sweep."""
    global _installed
    try:
        pid = int(os.environ.get(PARENT_ENV, ""))
    except ValueError:
        return None
    if _installed == pid:
        return pid
    _installed = pid
    direct = os.getppid() == pid
    if direct:
        _pdeathsig(sig)

    def gone() -> bool:
        return (direct and os.getppid() != pid) or not pid_alive(pid)

    if gone():  # the sweep died before we got here
        os.kill(os.getpid(), sig)
        return pid

    def watch():
        while not gone():
            time.sleep(WATCH_SECONDS)
        os.kill(os.getpid(), sig)

    threading.Thread(target=watch, name="matscale-lifeline", daemon=True).start()
    return pid


@contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM and SIGHUP raise KeyboardInterrupt("signal SIGTERM") in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]

    def handler(signum, frame):
        for s in sigs:  # one interrupt: a second signal must not cut short writing the outcome
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    old = {s: signal.signal(s, handler) for s in sigs}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
