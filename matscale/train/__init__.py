"""Training engine: loss, schedule, loop, checkpoints, FLOPs, distributed, evaluation.

    from matscale.config import TrainConfig
    from matscale.train import train
    result = train(TrainConfig(arch="transformer", size="s", frac=0.01))
"""
from __future__ import annotations


def train(config, **kwargs):
    """See `matscale.train.loop.train` (imported lazily: the package stays light)."""
    from matscale.train.loop import train as _train

    return _train(config, **kwargs)


__all__ = ["train"]
