"""`python -m matscale data synth|ensure|stats|summary|download|import`: make, fetch, import and inspect datasets.

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
    s.add_argument("--structures", type=int, default=20_000, help="target number of TRAINING structures; the validation split comes on top (~10-15%% more "
                        "rows: 2000 writes ~2,290 in all, counts printed at the end)")
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
    t.add_argument("--json", nargs="?", const="-", default=None, metavar="FILE",
                   help="print the statistics as JSON to stdout instead of the table (the old form "
                        "--json FILE still writes FILE, like --output FILE)")
    t.add_argument("--output", default=None, metavar="FILE", help="also write the JSON to FILE")

    m = sub.add_parser("import", help="import your own labelled structures (extxyz, .traj, .db, OUTCAR, ...)",
                       description="Read every frame of SRC files with ase.io.read and write them in the OMat24 "
                                   "layout OUT/{train,val}/SUBSET/ (see matscale.data.importer).")
    m.add_argument("sources", nargs="+", metavar="SRC", help="files ase.io.read understands")
    m.add_argument("--out", required=True, help="dataset root to write (may already hold other subsets)")
    m.add_argument("--subset", default="imported", help="subset name (default: imported)")
    v = m.add_mutually_exclusive_group()
    v.add_argument("--val-frac", type=float, default=None, help="share of structures (whole groups) for val (default 0.1)")
    v.add_argument("--val-from", nargs="+", default=None, metavar="FILE", help="files holding the validation structures")
    m.add_argument("--group-key", default="frame",
                   help="frames kept in one split together: frame (default, each frame alone), file (one group "
                        "per source file) or an atoms.info key such as config_type")
    for label, unit in (("energy", "eV"), ("forces", "eV/Å"), ("stress", "--stress-units"), ("virial", "eV")):
        m.add_argument(f"--{label}-key", default=None, metavar="KEY",
                       help=f"key of the {label} label [{unit}] in the calculator results, atoms.info or "
                            f"atoms.arrays (default: {label}; none = ignore it)")
    m.add_argument("--stress-units", default="eV/A3", help="units of stress labels: eV/A3 (default), GPa or kbar; "
                   "ASE sign (positive in tension). A virial (eV) becomes -virial/volume")
    m.add_argument("--seed", type=int, default=0, help="seed of the train/val split")
    m.add_argument("--json", action="store_true", help="print the import report as JSON")

    su = sub.add_parser("summary", help="write a dataset's per-subset statistics and element counts as JSON "
                                        "(what the book shows of a dataset a fresh clone lacks)")
    su_src = su.add_mutually_exclusive_group(required=True)
    su_src.add_argument("--dataset", default=None, help="named dataset (omat24-emt-v1, omat24-teacher-v1)")
    su_src.add_argument("--dir", default=None, help="dataset root")
    su.add_argument("--out", required=True, help="JSON file to write")

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
    from matscale.data.stats import format_table, summary_statistics, to_json, write_json

    df = summary_statistics(a.dir, splits=a.split, subsets=a.subsets)
    legacy = a.json not in (None, "-")
    if legacy:
        print(f"note: `--json {a.json}` is the old spelling of `--output {a.json}`", file=sys.stderr)
    for path in (a.output, a.json if legacy else None):
        if path:
            write_json(df, path)
    if a.json == "-":
        sys.stdout.write(to_json(df))
    else:
        print(format_table(df))
    return 0


def _import(a) -> int:
    import json

    from matscale.data.importer import Keys, format_report, import_data

    keys = Keys(a.energy_key, a.forces_key, a.stress_key, a.virial_key)
    r = import_data(a.sources, a.out, subset=a.subset, val_frac=a.val_frac, val_from=a.val_from,
                    group_key=a.group_key, keys=keys, stress_units=a.stress_units, seed=a.seed)
    for w in r.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(json.dumps(r.to_dict(), indent=1) if a.json else format_report(r))
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
    commands = {"synth": _synth, "ensure": _ensure, "stats": _stats, "summary": _summary, "download": _download,
                "import": _import}
    return commands[args.cmd](args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
