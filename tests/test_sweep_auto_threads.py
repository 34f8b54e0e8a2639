"""threads_per_run: auto — parallel single-threaded runs, cores shared when fewer points remain."""
from __future__ import annotations

import pytest

from matscale.errors import ConfigError
from matscale.sweep.executors import LocalExecutor, auto_layout


def test_auto_layout_rule():
    assert auto_layout(2, 38) == (2, 1)
    assert auto_layout(2, 1) == (1, 2)
    assert auto_layout(8, 3) == (3, 2)
    assert auto_layout(8, 20, max_parallel=4) == (4, 2)
    assert auto_layout(1, 0) == (1, 1)


def test_local_executor_applies_auto_when_it_knows_the_points(monkeypatch):
    import matscale.sweep.executors as ex

    monkeypatch.setattr(ex, "available_cpus", lambda: 2)
    seen = []
    executor = LocalExecutor(threads_per_run="auto")
    assert "auto" in executor.describe()
    executor.run([], on_result=seen.append, run_fn=lambda p: {})
    assert (executor.parallel, executor.threads) == (1, 2)
    with pytest.raises(ConfigError, match="or auto"):
        LocalExecutor(threads_per_run="many")


def test_sweep_file_accepts_auto(tmp_path):
    from matscale.sweep import spec

    f = tmp_path / "s.yaml"
    f.write_text("name: s\nbase: {arch: fcn, size: xs, device: cpu}\nlocal: {threads_per_run: auto}\n")
    assert spec.load(f).local["threads_per_run"] == "auto"
    f.write_text("name: s\nbase: {arch: fcn, size: xs, device: cpu}\nlocal: {threads_per_run: lots}\n")
    with pytest.raises(ConfigError, match="or auto"):
        spec.load(f)
