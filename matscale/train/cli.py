"""`python -m matscale train [options]`: train one model; options come from `TrainConfig`.

Every `TrainConfig` field becomes `--field-name` with its help, unit and default (see
`--help`), so the CLI never defines a setting of its own beyond the run controls
(--resume, --force, --quiet, --config FILE: YAML, TOML or JSON). Works the same under
`torchrun --nproc_per_node K -m matscale train ...` (DDP; rank 0 writes and prints).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from matscale.config import TrainConfig
from matscale.errors import ConfigError


def _type_of(f: dataclasses.Field):
    """argparse type of a field: `TrainConfig.coerce` (the one place values are typed)."""
    def parse(text: str):
        try:
            return TrainConfig.coerce(f.name, text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = str(f.type)  # argparse names it in "invalid <type> value" messages
    return parse


def _help(f: dataclasses.Field) -> str:
    meta = f.metadata
    text = meta.get("help", "")
    if meta.get("unit"):
        text += f" [{meta['unit']}]"
    default = f.default
    if isinstance(default, tuple):
        default = ",".join(default)
    if default is not None and not isinstance(default, bool):
        text += f" (default: {default})"
    elif isinstance(default, bool):
        text += f" (default: {'on' if default else 'off'})"
    return text.replace("%", "%%")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m matscale train",
        description="Train one model on OMat24-format data and write runs/<run_id>/ "
                    "(config.json, metrics.csv, summary.json, checkpoints/).")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for f in dataclasses.fields(TrainConfig):
        group_name = f.metadata.get("group", "training")
        group = groups.setdefault(group_name, parser.add_argument_group(f"{group_name} settings"))
        kwargs = dict(dest=f.name, type=_type_of(f), default=argparse.SUPPRESS, help=_help(f))
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if f.type in (bool, "bool"):
            kwargs.pop("type")
            kwargs["action"] = argparse.BooleanOptionalAction
        group.add_argument("--" + f.name.replace("_", "-"), **kwargs)
    run = parser.add_argument_group("run control")
    run.add_argument("--config", type=Path, default=None,
                     help="YAML, TOML or JSON file of settings (TrainConfig fields by name, or a run's "
                          "config.json); command-line options override it")
    run.add_argument("--resume", action="store_true",
                     help="continue an interrupted or failed run from its last checkpoint")
    run.add_argument("--force", action="store_true", help="start over even if the run exists or has finished")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict = {}
    if args.config is not None:
        from matscale.train.settings import read_settings

        values.update(read_settings(args.config))
    names = set(TrainConfig.field_names())
    values.update({k: v for k, v in vars(args).items() if k in names})
    return TrainConfig.from_dict(values)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    from matscale import lifeline

    lifeline.die_with_parent()  # started by a sweep: do not outlive it
    from matscale.train import distributed
    from matscale.train.loop import train

    quiet = True if args.quiet else None
    with lifeline.terminate_as_interrupt():  # SIGTERM/SIGHUP: recorded as interrupted, never left running
        result = train(config, resume=args.resume, force=args.force, quiet=quiet)
    if distributed.from_env().is_main:
        s = result.summary
        if result.skipped:
            print(f"{result.run_id}: already {result.status} (best val loss {s.get('best_val_loss')}); "
                  "nothing to do (use --force to re-run)")
        else:
            print(f"{result.run_id}: {result.status}; best val loss {s.get('best_val_loss'):.6g} "
                  f"(epoch {s.get('best_epoch')}), final {s.get('final_val_loss'):.6g}, "
                  f"{s.get('flops', 0):.3g} FLOPs, {s.get('wall_s', 0):.1f} s -> {result.run_dir}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
