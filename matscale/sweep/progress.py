"""Sweep progress: a tqdm bar over the points to run, a status line and the final table.

The status line counts points done / failed / skipped (already finished) / remaining and
estimates the time left from the mean wall time of the points finished in this sweep,
divided over the runs that go in parallel.
"""
from __future__ import annotations

import sys
import time
from typing import Any

import pandas as pd
from tqdm import tqdm


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class Progress:
    """Counts and ETA of one sweep; shows them on a tqdm bar when `enabled`."""

    def __init__(self, total: int, skipped: int, parallel: int, enabled: bool = True, name: str = "sweep") -> None:
        self.total, self.skipped, self.parallel = total, skipped, max(1, parallel)
        self.done = self.failed = 0
        self.walls: list[float] = []
        self.t0 = time.perf_counter()
        self.enabled = enabled
        self.bar = tqdm(total=total - skipped, desc=name, unit="run", file=sys.stderr, dynamic_ncols=True,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}]{postfix}",
                        disable=not enabled)
        self._show()

    @property
    def remaining(self) -> int:
        return self.total - self.skipped - self.done - self.failed

    def eta_s(self) -> float | None:
        """Seconds left: mean wall time of finished points × remaining / parallel runs."""
        if self.remaining == 0:
            return 0.0
        if not self.walls:
            return None
        waves = -(-self.remaining // min(self.parallel, self.remaining))  # ceil
        return sum(self.walls) / len(self.walls) * waves

    def line(self) -> str:
        return (f"done {self.done} | failed {self.failed} | skipped {self.skipped} | "
                f"remaining {self.remaining} | ETA {format_seconds(self.eta_s())}")

    def update(self, result: dict[str, Any]) -> None:
        ran = result["action"] != "skip"
        if not ran:  # finished meanwhile (another sweep ran it)
            self.skipped += 1
            self.bar.total = max(0, (self.bar.total or 0) - 1)
        else:
            if result["action"] != "invalid":  # never started: no wall time to learn from
                self.walls.append(float(result.get("wall_s") or 0.0))
            if result["status"] == "failed":
                self.failed += 1
            else:
                self.done += 1
        err = f": {result['error']}" if result.get("error") else ""
        self.note(f"[{self.done + self.failed + self.skipped}/{self.total}] {result['status']:<13} "
                  f"{result['run_id']} ({format_seconds(result.get('wall_s'))}){err}")
        self.bar.set_postfix_str(self.line(), refresh=False)
        if ran:
            self.bar.update(1)
        else:
            self.bar.refresh()

    def note(self, message: str) -> None:
        """A line above the bar (stderr), shown only when progress is enabled."""
        if self.enabled:
            self.bar.write(message, file=sys.stderr)

    def _show(self) -> None:
        self.bar.set_postfix_str(self.line(), refresh=True)

    def close(self) -> None:
        self.bar.close()


def summary_table(frame: pd.DataFrame, width: int = 70) -> str:
    """The final per-point table (errors shortened to `width` characters) and the totals."""
    if frame.empty:
        return "no points"
    cols = [c for c in ("run_id", "action", "status", "wall_s", "error") if c in frame]
    show = frame[cols].copy()
    show["wall_s"] = show["wall_s"].map(lambda s: format_seconds(s) if pd.notna(s) else "")
    show["error"] = show["error"].map(lambda e: "" if not isinstance(e, str) else
                                      (e if len(e) <= width else e[: width - 1] + "…"))
    counts = frame["status"].value_counts().to_dict()
    skipped = int((frame["action"] == "skip").sum())
    totals = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    return show.to_string(index=False) + f"\n{len(frame)} points: {totals} (skipped as already finished: {skipped})"
