"""Fault-injection matrix (issue 15): break things as an adversarial user would, check the outcome.

Every case runs the real CLI in a subprocess (offline, on a tiny synthetic set made here) and
prints one line: case, expected, got, PASS/FAIL; the total time comes last. Bounded: every
process has a timeout; a case takes seconds (the SIGKILL + resume case trains three times).

    python bench/fault_matrix.py [--only SUBSTRING] [--keep DIR]

Exit code 0 when every case passes, 1 otherwise. Cases needing a tmpfs mount (root) report
SKIP where mounting is not permitted.
"""
from __future__ import annotations

import argparse
import errno  # noqa: F401  (used by the injected driver)
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SUBSETS = "rattled-300,rattled-1000"
FLAGS = ["--arch", "fcn", "--size", "xs", "--subsets", SUBSETS, "--frac", "1", "--val-frac", "1",
         "--batch-size", "8", "--device", "cpu", "--quiet"]
TIMEOUT = 180


def env(**extra) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **extra}


def cli(*args, extra_env=None, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "matscale", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(**(extra_env or {})), cwd=REPO)


def py(code: str, *args, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", textwrap.dedent(code), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env(), cwd=REPO)


def one_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith("warning: ")]
    if len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in proc.stderr:
        return lines[0]
    return f"<{len(lines)} stderr lines, rc {proc.returncode}>"


def run_id(data, epochs, seed=0) -> str:
    code = ("import sys; from matscale.config import TrainConfig as T; print(T(arch='fcn', size='xs', "
            f"subsets=tuple('{SUBSETS}'.split(',')), frac=1.0, val_frac=1.0, epochs={epochs}, batch_size=8, "
            f"seed={seed}, data=sys.argv[1]).run_id())")
    return py(code, data).stdout.strip()


def summary(root, rid) -> dict:
    try:
        return json.loads((Path(root) / rid / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
            return True
        except ProcessLookupError:
            return False


def wait(pred, timeout=120.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def holder_pid(root, rid):
    try:
        return json.loads((Path(root) / "_locks" / f"{rid}.lock").read_text() or "{}").get("pid")
    except (OSError, ValueError):
        return None


class Matrix:
    def __init__(self, work: Path, only: str | None):
        self.work, self.only = work, only
        self.base = work / "data"
        self.results: list[tuple[str, str, str, str]] = []

    def copy(self, name: str) -> Path:
        dst = self.work / name
        shutil.copytree(self.base, dst)
        return dst

    def case(self, name: str, expected: str):
        def deco(fn):
            if self.only and self.only not in name:
                return fn
            t0 = time.perf_counter()
            try:
                got, ok = fn()
            except subprocess.TimeoutExpired:
                got, ok = "timed out", False
            except Exception as exc:  # noqa: BLE001 - a broken case is a failing case
                got, ok = f"{type(exc).__name__}: {exc}", False
            verdict = "SKIP" if ok is None else ("PASS" if ok else "FAIL")
            self.results.append((name, expected, got, verdict))
            print(f"{name:<28} | expected: {expected:<44} | got: {got[:110]:<110} | {verdict} "
                  f"({time.perf_counter() - t0:.1f} s)", flush=True)
            return fn
        return deco


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run only cases whose name contains this")
    ap.add_argument("--keep", help="work in this folder and keep it (default: a temp folder, removed)")
    args = ap.parse_args(argv)
    t_all = time.perf_counter()
    work = Path(args.keep or tempfile.mkdtemp(prefix="fault-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    m = Matrix(work, args.only)
    if not m.base.exists():
        proc = cli("data", "synth", "--out", m.base, "--structures", "40", "--workers", "1", "--quiet")
        if proc.returncode != 0:
            print(proc.stderr[-2000:])
            return 1

    # -- 1. truncated LMDB ---------------------------------------------------------------------
    @m.case("truncated_lmdb", "data stats + train: rc 2, one line naming file")
    def _():
        d = m.copy("trunc")
        victim = d / "train" / "rattled-300" / "data.aselmdb"
        os.truncate(victim, victim.stat().st_size // 2)
        a = cli("data", "stats", d)
        b = cli("train", *FLAGS, "--epochs", "1", "--data", d, "--run-root", work / "runs-trunc")
        s = summary(work / "runs-trunc", run_id(d, 1)).get("status")
        ok = a.returncode == b.returncode == 2 and str(victim) in one_line(a) and str(victim) in one_line(b)
        return f"rc {a.returncode}/{b.returncode}, summary {s}: {one_line(a)}", ok and s == "failed"

    # -- 2/3/7. rows and metadata ----------------------------------------------------------------
    def write_rows(path: Path, spec: str):
        code = """
            import sys, numpy as np, ase.db
            from ase import Atoms
            from ase.build import bulk
            from ase.calculators.singlepoint import SinglePointCalculator as SP
            db = ase.db.connect(sys.argv[1], type="aselmdb", use_lock_file=False)
            for n, e in eval(sys.argv[2]):
                a = bulk("Cu", "fcc", a=3.6) * (n, 1, 1) if n else Atoms(cell=np.eye(3) * 3.6, pbc=True)
                a.calc = SP(a, energy=e, forces=np.zeros((n, 3)), stress=np.zeros(6))
                db.write(a, data={"sid": f"r{n}", "parent_id": "p"})
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        return py(code, path, spec)

    @m.case("zero_atom_row", "rc 2, names file and row")
    def _():
        p = work / "zero" / "train" / "rattled-300" / "data.aselmdb"
        write_rows(p, "[(2, -3.0), (0, 0.0)]")
        proc = cli("data", "stats", work / "zero")
        return one_line(proc), proc.returncode == 2 and f"{p} row 2" in proc.stderr and "zero atoms" in proc.stderr

    @m.case("wrong_natoms_metadata", "rc 2, names metadata.npz to regenerate")
    def _():
        d = m.copy("natoms")
        meta = d / "train" / "rattled-300" / "metadata.npz"
        py("import sys, numpy as np; n = np.load(sys.argv[1])['natoms']; np.savez(sys.argv[1], natoms=n + 1)", meta)
        proc = cli("data", "stats", d)
        return one_line(proc), proc.returncode == 2 and str(meta) in proc.stderr

    @m.case("energy_1e30", "rc 2, names the row, no lr advice")
    def _():
        p = work / "e30" / "train" / "rattled-300" / "data.aselmdb"
        write_rows(p, "[(2, -3.0), (2, 1e30)]")
        proc = cli("data", "stats", work / "e30")
        return one_line(proc), proc.returncode == 2 and f"{p} row 2" in proc.stderr and "lr" not in proc.stderr

    @m.case("pickled_metadata", "rc 2, no allow_pickle advice")
    def _():
        d = m.copy("pickled")
        meta = d / "train" / "rattled-300" / "metadata.npz"
        py("import sys, numpy as np; np.savez(sys.argv[1], natoms=np.array([object()] * 3, dtype=object))", meta)
        proc = cli("data", "stats", d)
        return one_line(proc), proc.returncode == 2 and "allow_pickle" not in proc.stderr

    # -- 4. fits ---------------------------------------------------------------------------------
    @m.case("frontier_one_run_bootstrap", "fit refused (FitError), rc 2")
    def _():
        csv = work / "one_run.csv"
        py("""
            import sys, numpy as np, pandas as pd
            c = np.geomspace(1e10, 1e14, 12)
            pd.DataFrame({"flops": c, "loss": 0.2 + 5 * (c / 1e10) ** -0.2, "run": "a"}).to_csv(sys.argv[1], index=False)
        """, csv)
        proc = cli("fit", csv, "--law", "frontier", "--x", "flops", "--y", "loss", "--run", "run", "--bootstrap", "50")
        return one_line(proc), proc.returncode == 2 and "1 run" in proc.stderr

    @m.case("losses_1e-300", "same fit as at scale 1 (x 1e-300)")
    def _():
        proc = py("""
            import numpy as np
            from matscale.fit.api import fit_law
            x = np.geomspace(1e3, 1e7, 8)
            y = (0.5 + 3.0 * (x / 1e3) ** -0.3) * (1 + 0.01 * np.random.default_rng(0).standard_normal(8))
            a, b = fit_law(x, y, "power_floor"), fit_law(x, y * 1e-300, "power_floor")
            rel = max(abs(b[n].value / (a[n].value * u) - 1) for n, u in (("E", 1e-300), ("A", 1e-300), ("alpha", 1)))
            print(f"E {b['E'].value:.4g} (at 1: {a['E'].value:.4g}), max rel diff {rel:.1e}, warnings {len(b.warnings)}")
        """)
        out = proc.stdout.strip()
        return out or proc.stderr[-200:], proc.returncode == 0 and "warnings 0" in out

    # -- 5/6. file system and config ---------------------------------------------------------------
    @m.case("disk_full_tmpfs", "rc 2, one line, summary failed")
    def _():
        mnt = work / "tmpfs"
        mnt.mkdir(exist_ok=True)
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                          capture_output=True).returncode != 0:
            return "mount not permitted", None
        try:
            proc = cli("train", *FLAGS, "--epochs", "1", "--data", m.base, "--run-root", mnt)
            s = summary(mnt, run_id(m.base, 1)).get("status")
            return f"rc {proc.returncode}, summary {s}: {one_line(proc)}", proc.returncode == 2 and s == "failed" \
                and "No space" in one_line(proc)
        finally:
            subprocess.run(["umount", str(mnt)], capture_output=True)

    @m.case("disk_full_simulated", "rc 2, one line, summary failed")
    def _():
        root = work / "runs-enospc"
        proc = py("""
            import errno, sys
            from matscale.train import checkpoint
            def full(path, data):
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            checkpoint.atomic_write_bytes = full
            from matscale.cli import main
            sys.exit(main(sys.argv[1:]))
        """, "train", *FLAGS, "--epochs", "1", "--data", m.base, "--run-root", root)
        s = summary(root, run_id(m.base, 1)).get("status")
        return f"rc {proc.returncode}, summary {s}: {one_line(proc)}", proc.returncode == 2 and s == "failed"

    @m.case("run_root_is_a_file", "rc 2, one line")
    def _():
        f = work / "a_file"
        f.write_text("x")
        proc = cli("train", *FLAGS, "--epochs", "1", "--data", m.base, "--run-root", f)
        return one_line(proc), proc.returncode == 2 and "not a folder" in proc.stderr

    @m.case("run_root_symlink_loop", "rc 2, one line")
    def _():
        loop = work / "loop"
        if not loop.is_symlink():
            loop.symlink_to(loop)
        proc = cli("train", *FLAGS, "--epochs", "1", "--data", m.base, "--run-root", loop)
        return one_line(proc), proc.returncode == 2 and "symbolic link" in proc.stderr

    @m.case("config_is_a_list", "rc 2, one line, nothing trained")
    def _():
        cfg = work / "list.json"
        cfg.write_text('["fcn"]')
        proc = cli("train", "--config", cfg, "--run-root", work / "runs-list")
        return one_line(proc), proc.returncode == 2 and not (work / "runs-list").exists()

    @m.case("malicious_checkpoint", "rc 2, not executed, no weights_only advice")
    def _():
        root = work / "runs-evil"
        rid = run_id(m.base, 1)
        marker = work / "pwned"
        py("""
            import os, sys, torch
            class Evil:
                def __reduce__(self):
                    return (os.system, ("touch " + sys.argv[2],))
            os.makedirs(os.path.dirname(sys.argv[1]), exist_ok=True)
            torch.save({"format": 1, "model": {}, "run_id": "x", "evil": Evil()}, sys.argv[1])
        """, root / rid / "checkpoints" / "last.pt", marker)
        (root / rid / "summary.json").write_text(json.dumps({"run_id": rid, "status": "failed"}))
        proc = cli("train", *FLAGS, "--epochs", "1", "--data", m.base, "--run-root", root, "--resume")
        ok = proc.returncode == 2 and not marker.exists() and "weights_only" not in proc.stderr
        return one_line(proc), ok

    # -- 9 + the passing baseline: SIGKILL, stale lock, bitwise resume ---------------------------------
    @m.case("sigkill_resume_identical", "stale lock taken over; metrics identical")
    def _():
        ref, cut = work / "runs-ref", work / "runs-cut"
        rid = run_id(m.base, 3)
        a = cli("train", *FLAGS, "--epochs", "3", "--data", m.base, "--run-root", ref)
        b = py("""
            import os, signal, sys
            from matscale.train import loop
            loop.after_step = lambda s: os.kill(os.getpid(), signal.SIGKILL) if s == 5 else None
            from matscale.cli import main
            sys.exit(main(sys.argv[1:]))
        """, "train", *FLAGS, "--epochs", "3", "--data", m.base, "--run-root", cut)
        c = cli("train", *FLAGS, "--epochs", "3", "--data", m.base, "--run-root", cut, "--resume")
        same = (ref / rid / "metrics.csv").read_text().splitlines()
        other = (cut / rid / "metrics.csv").read_text().splitlines() if c.returncode == 0 else []
        drop = [i for i, h in enumerate(same[0].split(",")) if h == "wall_s"]
        strip = lambda rows: [",".join(v for i, v in enumerate(r.split(",")) if i not in drop) for r in rows]  # noqa: E731
        ok = a.returncode == 0 and b.returncode == -signal.SIGKILL and c.returncode == 0 and strip(same) == strip(other)
        return f"rc {a.returncode}/{b.returncode}/{c.returncode}, {len(same) - 1} metric rows equal: {ok}", ok

    @m.case("concurrent_train", "second train refused: in progress (pid N)")
    def _():
        root = work / "runs-busy"
        rid = run_id(m.base, 5000)
        first = subprocess.Popen([PY, "-m", "matscale", "train", *FLAGS, "--epochs", "5000", "--data", str(m.base),
                                  "--run-root", str(root)], env=env(), cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait(lambda: (root / rid / "metrics.csv").exists() or first.poll() is not None)
            second = cli("train", *FLAGS, "--epochs", "5000", "--data", m.base, "--run-root", root, "--force")
            ev = cli("evaluate", root / rid)
            ok = second.returncode == ev.returncode == 2 and f"(pid {first.pid})" in second.stderr \
                and (root / rid / "metrics.csv").exists() and f"(pid {first.pid})" in ev.stderr
        finally:
            first.kill()
            first.wait(20)
        status = py("import sys, warnings; from matscale import runs; print(runs.load(sys.argv[1]).status.iloc[0])",
                    root).stdout.strip()
        return f"{one_line(second)}; after SIGKILL runs.load says {status}", ok and status == "interrupted"

    # -- 8. sweeps --------------------------------------------------------------------------------
    def sweep_file(path: Path, epochs: int, seeds, arch="fcn") -> Path:
        base = {"arch": arch, "subsets": SUBSETS, "frac": 1.0, "val_frac": 1.0, "batch_size": 8,
                "epochs": epochs, "data": str(m.base)}
        if arch == "fcn":
            base["size"] = "xs"
        path.write_text(json.dumps({"base": base, "grid": {"seed": list(seeds)}}))
        return path

    def sweep_stop(sig: int, name: str):
        root = work / f"runs-{name}"
        spec = sweep_file(work / f"{name}.yaml", 5000, [0])
        rid = run_id(m.base, 5000)
        sweep = subprocess.Popen([PY, "-m", "matscale", "sweep", str(spec), "--root", str(root), "--no-progress",
                                  "--max-parallel", "1"], env=env(), cwd=REPO, start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 # a script run in the background inherits SIGINT ignored: undo that
                                 preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            wait(lambda: holder_pid(root, rid) not in (None, sweep.pid) and (root / rid / "summary.json").exists())
            child = holder_pid(root, rid)
            os.kill(sweep.pid, sig)
            t0 = time.time()
            gone = wait(lambda: not alive(child), timeout=20)
            dt = time.time() - t0
        finally:
            if sweep.poll() is None:
                sweep.kill()
            sweep.wait(20)
        s = summary(root, rid)
        return f"child gone after {dt:.1f} s; summary {s.get('status')}: {s.get('error')}", \
            gone and dt < 10 and s.get("status") == "failed" and "interrupted" in (s.get("error") or "")

    @m.case("sweep_sigkill", "child dies within seconds; run interrupted")
    def _():
        return sweep_stop(signal.SIGKILL, "sweep-kill")

    @m.case("sweep_sigint", "child stopped; run marked interrupted")
    def _():
        return sweep_stop(signal.SIGINT, "sweep-int")

    @m.case("concurrent_sweeps", "both rc 0; record says completed")
    def _():
        root = work / "runs-two"
        spec = sweep_file(work / "two.yaml", 1, [0, 1], arch="mean")
        cmd = [PY, "-m", "matscale", "sweep", str(spec), "--root", str(root), "--no-progress", "--max-parallel", "1"]
        procs = [subprocess.Popen(cmd, env=env(), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for _ in range(2)]
        rcs = [p.wait(TIMEOUT) for p in procs]
        import csv

        with open(root / "_sweeps" / "two.csv") as fh:
            statuses = [r["status"] for r in csv.DictReader(fh)]
        return f"rc {rcs}, record {statuses}", rcs == [0, 0] and statuses == ["completed"] * 2

    @m.case("bad_grid_value", "only that point rejected")
    def _():
        spec = work / "bad.yaml"
        spec.write_text(json.dumps({"base": {"arch": "mean", "epochs": 1, "data": str(m.base)},
                                    "grid": {"frac": [1.0, "abc"]}}))
        proc = cli("sweep", spec, "--root", work / "runs-bad", "--dry-run")
        lines = proc.stdout.splitlines()
        ok = proc.returncode == 1 and sum("invalid" in ln and "abc" in ln for ln in lines) == 1 \
            and sum(ln.strip().startswith("new") for ln in lines) == 1
        return f"rc {proc.returncode}: {' / '.join(ln.strip() for ln in lines[1:])}", ok

    # -- 10. hygiene -------------------------------------------------------------------------------
    @m.case("umask_and_orphans", "0664 under umask 002; orphan .tmp removed")
    def _():
        root = work / "runs-umask"
        rid = run_id(m.base, 1)
        a = subprocess.run(["sh", "-c", f"umask 002 && exec {PY} -m matscale train " + " ".join(map(str, FLAGS))
                            + f" --epochs 1 --data {m.base} --run-root {root}"], capture_output=True, text=True,
                           env=env(), cwd=REPO, timeout=TIMEOUT)
        mode = oct((root / rid / "summary.json").stat().st_mode & 0o777) if a.returncode == 0 else "-"
        orphan = root / rid / "checkpoints" / ".best.pt.x1y2.tmp"
        orphan.write_bytes(b"half")
        s = json.loads((root / rid / "summary.json").read_text())
        (root / rid / "summary.json").write_text(json.dumps({**s, "status": "failed"}))
        b = cli("train", *FLAGS, "--epochs", "1", "--data", m.base, "--run-root", root, "--resume")
        return f"mode {mode}, orphan left: {orphan.exists()}", mode == "0o664" and b.returncode == 0 \
            and not orphan.exists()

    @m.case("corrupt_summary_listed", "runs.load warns, lists it")
    def _():
        root = work / "runs-corrupt"
        (root / "bad-run").mkdir(parents=True)
        (root / "bad-run" / "summary.json").write_text("{oops")
        proc = py("import sys; from matscale import runs; print(runs.load(sys.argv[1]).attrs['corrupt'])", root)
        return proc.stdout.strip() + " / " + (proc.stderr.strip().splitlines() or [""])[-1][:60], \
            "bad-run" in proc.stdout and "UserWarning" in proc.stderr

    total = time.perf_counter() - t_all
    failed = [r for r in m.results if r[3] == "FAIL"]
    print(f"{len(m.results)} cases: {sum(r[3] == 'PASS' for r in m.results)} pass, {len(failed)} fail, "
          f"{sum(r[3] == 'SKIP' for r in m.results)} skipped; total {total:.0f} s")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
