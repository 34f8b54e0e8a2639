"""Run the benches on a CUDA GPU and write the figures: `make bench-gpu` (one command).

    .venv/bin/python bench/run_gpu.py [--out bench/results/gpu] [--quick] [--timeout 240]

Checks first that a CUDA device is visible (exits 2 with a message otherwise), then runs,
each with a time limit, writing each output to <out>/<name>.txt and a summary to
<out>/SUMMARY.md (GPU name, torch/CUDA versions, each command, exit status, seconds, and the
RATIO / MFU lines):
1. gpu_mfu.py: MFU of the transformer (xxl) and EquiformerV2 (omat24_l) training steps, fp32 and bf16;
2. bench_models.py, bench_engine.py, bench_peers.py, bench_compile.py with --device cuda;
3. the real training loop on the GPU: bf16 and fp16 (GradScaler) runs, a torch.compile run,
   and DDP over every visible GPU with nccl (torchrun), each one epoch of a 1% subset.
--quick shrinks every step (smaller models and fewer rounds) to fit a ~10-minute slot.
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def steps(quick: bool, ngpu: int, run_root: str) -> list[tuple[str, list[str]]]:
    py = sys.executable
    train = [py, "-m", "matscale", "train", "--frac", "0.01", "--epochs", "1", "--device", "cuda",
             "--val-frac", "0.02", "--run-root", run_root, "--force"]
    mfu_models = "transformer:l,equiformer_v2:s" if quick else "transformer:xxl,equiformer_v2:omat24_l"
    return [
        ("gpu_mfu", [py, str(HERE / "gpu_mfu.py"), "--device", "cuda", "--models", mfu_models,
                     "--steps", "5" if quick else "10"]),
        ("bench_models", [py, str(HERE / "bench_models.py"), "--device", "cuda", "--archs", "transformer",
                          "--sizes", *(["s", "m", "l"] if quick else ["s", "m", "l", "xl", "xxl"])]),
        ("bench_engine", [py, str(HERE / "bench_engine.py"), "--device", "cuda", "--rounds", "3"]),
        ("bench_peers", [py, str(HERE / "bench_peers.py"), "--device", "cuda", "--rounds", "2" if quick else "3"]),
        ("bench_compile", [py, str(HERE / "bench_compile.py"), "--device", "cuda",
                           "--archs", "transformer:m,equiformer_v2:xs" if quick else "fcn:s,transformer:l,equiformer_v2:s"]),
        ("train_bf16", [*train, "--arch", "transformer", "--size", "s", "--precision", "bf16"]),
        ("train_fp16", [*train, "--arch", "equiformer_v2", "--size", "xs", "--precision", "fp16"]),
        ("train_compile", [*train, "--arch", "transformer", "--size", "s", "--compile"]),
        ("train_ddp_nccl", [py, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={max(ngpu, 1)}",
                            "-m", "matscale", "train", *train[4:], "--arch", "schnet", "--size", "s"]),
    ]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(HERE / "results" / "gpu"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--timeout", type=float, default=240.0, help="seconds per step")
    p.add_argument("--only", default=None, help="comma-separated step names")
    args = p.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device is visible; bench/run_gpu.py needs a GPU (the CPU benches: make bench)",
              file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ngpu = torch.cuda.device_count()
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    lines = [f"# GPU benches, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", "",
             f"- device: {torch.cuda.get_device_name(0)} x {ngpu}; torch {torch.__version__}, CUDA {torch.version.cuda}",
             f"- mode: {'quick' if args.quick else 'full'}; per-step limit {args.timeout:.0f} s", ""]
    with tempfile.TemporaryDirectory() as run_root:
        for name, cmd in steps(args.quick, ngpu, run_root):
            if args.only and name not in args.only.split(","):
                continue
            t = time.perf_counter()
            try:
                r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=args.timeout)
                text, rc = r.stdout + r.stderr, r.returncode
            except subprocess.TimeoutExpired as exc:
                text = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
                text, rc = text + f"\n[timed out after {args.timeout:.0f} s]", 124
            dt = time.perf_counter() - t
            (out / f"{name}.txt").write_text(f"$ {' '.join(cmd)}\n{text}")
            keep = [ln for ln in text.splitlines() if "RATIO" in ln or "%" in ln or "completed" in ln or "error" in ln]
            lines += [f"## {name}: exit {rc}, {dt:.0f} s", "", "```", *keep[-20:], "```", ""]
            print(f"{name}: exit {rc}, {dt:.0f} s", flush=True)
    (out / "SUMMARY.md").write_text("\n".join(lines))
    print(f"figures in {out}/ (SUMMARY.md); commit them with the branch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
