"""Model FLOP utilisation (MFU) of a training step at the largest ladder sizes (for GPUs).

    .venv/bin/python bench/gpu_mfu.py [--device cuda] [--models transformer:xxl,equiformer_v2:omat24_l]
                                      [--precisions none,bf16] [--batch-size 16] [--steps 10]
                                      [--peak-tflops X]

Not a `make bench` bench (its sizes need a GPU); `bench/run_gpu.py` runs it. For each model
and precision: the real training step (`bench/_common.py`, autocast as the training loop
does it) on default-set batches, FLOPs per step from FlopCounterMode (matmul FLOPs, 2 per
multiply-add), median step time after warm-up, achieved TFLOP/s and MFU = achieved / peak.
Peak: --peak-tflops, else a table of dense peaks by GPU name and precision (fp32 matmuls run
without TF32, torch's default; bf16/fp16 on tensor cores). On CPU it runs too (small
--models) but prints no MFU unless --peak-tflops is given.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from _common import Clock, add_device_arg, default_structures, loss_parts, make_trainer, setup_device

from matscale.data.batch import collate
from matscale.models import build, count_parameters, graph_cache
from matscale.train.flops import count_step_flops
from matscale.train.loss import loss
from matscale.train.validation import autocast

# dense peak TFLOP/s by (name fragment, precision): vendor datasheets, SXM parts, no sparsity
PEAKS = {("H200", "none"): 66.9, ("H200", "bf16"): 989.4, ("H200", "fp16"): 989.4,
         ("H100", "none"): 66.9, ("H100", "bf16"): 989.4, ("H100", "fp16"): 989.4,
         ("A100", "none"): 19.5, ("A100", "bf16"): 312.0, ("A100", "fp16"): 312.0}


def peak_for(device: str, precision: str, override: float | None) -> float | None:
    if override:
        return override
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for (frag, p), v in PEAKS.items() if frag in name and p == precision), None)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", default="transformer:xxl,equiformer_v2:omat24_l")
    p.add_argument("--precisions", default="none,bf16")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--peak-tflops", type=float, default=None)
    add_device_arg(p)
    args = p.parse_args(argv)
    device = setup_device(args)
    structures = default_structures(4 * args.batch_size, seed=5)
    batches = [structures[i:i + args.batch_size] for i in range(0, len(structures), args.batch_size)]
    clock = Clock(device, wall=True)
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "cpu"
    print(f"MFU on {name}; batches of {args.batch_size} default-set structures; {args.steps} timed steps")
    print(f"{'model':<26}{'prec':>6}{'params':>14}{'GFLOP/step':>12}{'ms/step':>10}{'TFLOP/s':>9}{'MFU':>8}")
    cache = graph_cache.GraphCache(1024 * 2**20)
    for item in args.models.split(","):
        arch, _, size = item.partition(":")
        for precision in args.precisions.split(","):
            try:
                torch.manual_seed(0)
                model = build(arch, size)
                total_params = count_parameters(model)[0]
                step = make_trainer(model, structures, device)
                weights, scales, _ = loss_parts(structures)
                probe = collate(batches[0], labels=True).to(device)

                def step_loss(m, b):
                    with autocast(device, precision):
                        out = m(b)
                    return loss(out, b, weights, scales)[0]
                flops = count_step_flops(model, probe, step_loss)

                def run(i):
                    with graph_cache.use(cache), autocast(device, precision):
                        step(batches[i % len(batches)])
                for i in range(3):
                    run(i)  # warm-up (cuBLAS heuristics, graph cache, allocator)
                times = []
                for i in range(args.steps):
                    t = clock()
                    run(0)  # the probe batch, whose FLOPs were counted
                    times.append(clock() - t)
            except torch.cuda.OutOfMemoryError as exc:
                print(f"{item:<26}{precision:>6} out of GPU memory: {str(exc).splitlines()[0][:100]}")
                torch.cuda.empty_cache()
                continue
            except Exception as exc:  # noqa: BLE001 - report and go on
                print(f"{item:<26}{precision:>6} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:140]}")
                continue
            dt = statistics.median(times)
            tflops = flops / dt / 1e12
            peak = peak_for(device, precision, args.peak_tflops)
            mfu = f"{tflops / peak:7.1%}" if peak else "      -"
            print(f"{item:<26}{precision:>6}{total_params:>14,}{flops / 1e9:>12.1f}{dt * 1e3:>10.1f}{tflops:>9.2f}{mfu:>8}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
