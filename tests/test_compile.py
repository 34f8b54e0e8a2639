"""Opt-in torch.compile: refused for conservative models, failures become clear errors."""
from __future__ import annotations

import pytest
import torch

from matscale import models
from matscale.config import TrainConfig
from matscale.errors import ConfigError, MatscaleError
from matscale.train.compile import _Guarded, compile_model, uncompile
from matscale.train.loop import train

torch.set_num_threads(1)


def test_conservative_models_are_refused_with_a_clear_message(tmp_path, emt_structures, emt_val_structures):
    with pytest.raises(ConfigError, match="double backward"):
        compile_model(models.build("schnet", "xs"))
    cfg = TrainConfig(arch="schnet", size="xs", epochs=1, batch_size=8, device="cpu", compile=True,
                      run_root=str(tmp_path))
    with pytest.raises(ConfigError, match="without --compile"):
        train(cfg, train_set=emt_structures[:8], val_set=emt_val_structures[:4], quiet=True)
    with pytest.raises(ConfigError, match="compile must be true or false"):
        TrainConfig(compile="yes", device="cpu").validate()


def test_compiler_failures_become_matscale_errors_and_others_pass_through():
    def generated_kernel(x):  # stands in for code inductor generated
        raise NameError("name 's42' is not defined")
    generated_kernel.__code__ = generated_kernel.__code__.replace(co_filename="/tmp/torchinductor_x/ab.py")
    with pytest.raises(MatscaleError, match="torch.compile failed for fcn-xs.*without --compile"):
        _Guarded(generated_kernel, "fcn-xs")(1)

    def user_bug(x):
        raise KeyError("energy")
    with pytest.raises(KeyError):
        _Guarded(user_bug, "fcn-xs")(1)


def test_compile_model_replaces_compute_and_uncompile_restores_it():
    """(Compiling and training is measured in bench/bench_compile.py: inductor takes ~10-80 s here.)"""
    model = compile_model(models.build("fcn", "xs"))
    assert isinstance(model.__dict__["compute"], _Guarded)
    assert "compute" not in uncompile(model).__dict__
