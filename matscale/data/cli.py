"""`python -m matscale data synth|ensure|stats|summary|download`: make, fetch and inspect datasets.

Only argparse is imported at start-up; each command imports what it needs (no torch or
fairchem anywhere on these paths).
"""
from __future__ import annotations

import argparse
import sys


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m matscale data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")

    s = sub.add_parser("synth", help="generate a synthetic OMat24-format dataset (EMT or teacher labels)")
    s.add_argument("--out", required=True, help="output directory (must not exist or be empty)")
    s.add_argument("--structures", type=int, default=20_000, help="target training structures (val adds ~10%%)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--calculator", default="emt", help="label calculator: emt (default), emt-ase, chgnet or sevennet "
                   "(pretrained teachers, extra 'teacher'), or module:factory")
    s.add_argument("--workers", type=int, default=None, help="worker processes (default: min(2, CPUs))")
    s.add_argument("--shard-rows", type=int, default=None, help="rows per .aselmdb shard (default 25000)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("ensure", help="generate the default (or a named) dataset if it is missing; print its path")
    e.add_argument("--dataset", default=None, help="named dataset: omat24-emt-v1 (default) or omat24-teacher-v1")
    e.add_argument("--workers", type=int, default=None)
    e.add_argument("--quiet", action="store_true")

    t = sub.add_parser("stats", help="summary statistics per split x subset")
    t.add_argument("dir", help="dataset root (<dir>/<split>/<subset>/*.aselmdb)")
    t.add_argument("--split", action="append", choices=["train", "val"], help="split(s) (default: both present)")
    t.add_argument("--subsets", default=None, help="comma-separated subset names (default: all)")
    t.add_argument("--json", default=None, metavar="FILE", help="also write machine-readable JSON to FILE ('-' = stdout only)")

    m = sub.add_parser("summary", help="write a dataset's per-subset statistics and element counts as JSON "
                                       "(what the book shows of a dataset a fresh clone lacks)")
    m_src = m.add_mutually_exclusive_group(required=True)
    m_src.add_argument("--dataset", default=None, help="named dataset (omat24-emt-v1, omat24-teacher-v1)")
    m_src.add_argument("--dir", default=None, help="dataset root")
    m.add_argument("--out", required=True, help="JSON file to write")

    d = sub.add_parser("download", help="download one OMat24 subset archive and unpack it")
    d.add_argument("--subset", required=True)
    d.add_argument("--split", required=True, choices=["train", "val"])
    d.add_argument("--out", required=True, help="dataset root; files land in OUT/<split>/<subset>/")
    d.add_argument("--base-url", default=None, help="mirror of https://dl.fbaipublicfiles.com/opencatalystproject/data/omat")
    d.add_argument("--release", default=None, help="release folder (default: 241018 for train, 241220 for val)")
    d.add_argument("--quiet", action="store_true")
    return p


def _synth(a) -> int:
    from matscale.data.synth import synthesize

    r = synthesize(a.out, a.structures, seed=a.seed, calculator=a.calculator, workers=a.workers,
                   progress=not a.quiet, shard_rows=a.shard_rows)
    print(f"wrote {r.root}: {r.total('train')} train + {r.total('val')} val structures "
          f"({r.parents['train']} + {r.parents['val']} parents) in {r.elapsed_s:.1f} s "
          f"({r.structures_per_s:.1f} structures/s, {r.workers} workers)")
    return 0


def _ensure(a) -> int:
    from matscale.data.default import ensure_default, ensure_named

    if a.dataset is None:
        print(ensure_default(progress=not a.quiet, workers=a.workers))
    else:
        print(ensure_named(a.dataset, progress=not a.quiet, workers=a.workers))
    return 0


def _stats(a) -> int:
    from matscale.data.stats import format_table, summary_statistics, to_json

    df = summary_statistics(a.dir, splits=a.split, subsets=a.subsets)
    if a.json == "-":
        sys.stdout.write(to_json(df))
        return 0
    print(format_table(df))
    if a.json:
        from matscale.data.stats import write_json

        write_json(df, a.json)
    return 0


def _summary(a) -> int:
    from pathlib import Path

    from matscale.data.default import dataset_root, is_complete
    from matscale.data.elements import write_summary
    from matscale.errors import DataError

    root = dataset_root(a.dataset) if a.dataset else Path(a.dir)
    if not is_complete(root):
        hint = f"make it first: python -m matscale data ensure --dataset {a.dataset}" if a.dataset else "check the path"
        raise DataError(f"no complete dataset at {root}; {hint}")
    made_by = f"python -m matscale data summary --dataset {a.dataset}" if a.dataset else "python -m matscale data summary"
    info = write_summary(root, a.out, made_by=made_by)
    n = len({e["element"] for e in info["elements"]})
    print(f"wrote {a.out}: {root.name}, {n} elements, {info['size_bytes'] / 1e6:.1f} MB on disk")
    return 0


def _download(a) -> int:
    from matscale.data.download import download

    kwargs = {} if a.base_url is None else {"base_url": a.base_url}
    path = download(a.subset, a.split, a.out, release=a.release, progress=not a.quiet, **kwargs)
    print(path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return {"synth": _synth, "ensure": _ensure, "stats": _stats, "summary": _summary,
            "download": _download}[args.cmd](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
