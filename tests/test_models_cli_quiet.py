"""`python -m matscale models`: no stray CUDA-driver notice from a dependency (Warp, imported by
fairchem through nvalchemiops) and parameter counts cached, so later listings import no fairchem."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from matscale.models.quiet_import import NOTICE, stderr_without


def test_stderr_filter_drops_only_the_notice(capfd):
    with stderr_without(NOTICE):
        os.write(2, f"{NOTICE}. GPU execution will not be available.\n".encode())
        os.write(2, b"a real problem\n")
    err = capfd.readouterr().err
    assert err == "a real problem\n"


@pytest.mark.slow  # imports fairchem once (~20 s of CPU on 2 cores)
def test_models_listing_is_quiet_and_cached(tmp_path):
    env = {**os.environ, "MATSCALE_CACHE_DIR": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "matscale", "models", "--arch", "esen", "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "Warp" not in first.stderr and "CUDA" not in first.stderr, first.stderr
    cache = json.loads((tmp_path / "model-params.json").read_text())
    assert len(cache) == len(json.loads(first.stdout))
    probe = ("import sys; from matscale.cli import main; main(['models', '--arch', 'esen', '--json']); "
             "print('fairchem.core' in sys.modules, file=sys.stderr)")
    second = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert json.loads(second.stdout) == json.loads(first.stdout)
    assert second.stderr.strip() == "False"  # counts came from the cache: fairchem was never imported
