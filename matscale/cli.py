"""`python -m matscale COMMAND ...`: a thin dispatcher.

Each command lives in its own module with a `main(argv) -> int`; only the chosen one is
imported, so `python -m matscale data ...` never pays for torch models or fairchem.
"""
from __future__ import annotations

import importlib
import os
import sys

from matscale.errors import MatscaleError

# command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("matscale.data.cli", "generate, download, import, inspect OMat24-format datasets"),
    "models": ("matscale.models.cli", "list architectures and their size ladders"),
    "train": ("matscale.train.cli", "train one model (also under torchrun)"),
    "evaluate": ("matscale.train.evaluate", "evaluate a run's best checkpoint"),
    "fit": ("matscale.fit.cli", "fit scaling laws to a CSV of results"),
    "sweep": ("matscale.sweep", "run a grid of training runs (local or SLURM)"),
    "study": ("matscale.study.cli", "a study's status; store each finished run's equivariance error"),
    "runs": ("matscale.runs_cli", "list runs (ls) and export results for fit (export)"),
}


def _usage() -> str:
    lines = ["usage: python -m matscale COMMAND [options]", "", "commands:"]
    width = max(len(c) for c in COMMANDS)
    for name, (_, text) in COMMANDS.items():
        lines.append(f"  {name:<{width}}  {text}")
    lines.append("")
    lines.append("Run `python -m matscale COMMAND --help` for a command's options.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}; choose one of: {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except MatscaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except OSError as exc:  # disk full, a file where a folder should be, a symlink loop: one line
        if os.environ.get("MATSCALE_TRACEBACK"):
            raise
        from matscale.fserrors import describe

        print(f"error: {describe(exc)}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
