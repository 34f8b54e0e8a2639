"""`python -m matscale study [STUDY]` (also `python -m matscale.study`): a study's status, and
the equivariance measurement of every finished run stored next to it before runs/ is committed;
`--archive` moves the study's run folders aside so `make study` reruns it from scratch."""
from __future__ import annotations

import sys

from matscale.errors import MatscaleError
from matscale.study.results import results, status_table

def main(argv: list[str] | None = None) -> int:
    """`python -m matscale study [STUDY] [--runs-root DIR]`: status of a study's runs, and the
    equivariance measurement of every finished run (stored next to it, so it survives when the
    checkpoints are not committed). Run it after the study and before committing runs/."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m matscale study", description=main.__doc__.split("\n")[0])
    p.add_argument("study", nargs="?", default="default", help="study name under book/sweeps/ or a sweep file")
    p.add_argument("--runs-root", default="runs", help="runs folder (relative: from the repository root)")
    p.add_argument("--no-equivariance", action="store_true", help="only print the status")
    p.add_argument("--archive", action="store_true",
                   help="move the study's existing run folders to RUNS_ROOT/_archive/<UTC time>/ and stop, "
                        "so the next sweep reruns the study from scratch (nothing is deleted)")
    args = p.parse_args(argv)
    try:
        if args.archive:
            from matscale.runs import archive
            from matscale.study.results import plan

            moved = archive(plan(args.study)["run_id"], args.runs_root)
            print(f"archived {len(moved)} run folder(s)" + (f" to {moved[0].parent}" if moved else ""))
            return 0
        table = results(args.study, args.runs_root)
        print(status_table(table).to_string())
        if not args.no_equivariance:
            from matscale.study.results import trainable
            from matscale.train.evaluate import store_equivariance

            runs = trainable(table[table["finished"]])["run_dir"]
            sources = [store_equivariance(run_dir) for run_dir in runs]
            if sources:
                counts = {k: sources.count(k) for k in dict.fromkeys(sources)}
                print("equivariance measurements: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    except MatscaleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

