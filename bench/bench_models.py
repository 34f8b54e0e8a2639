"""Forward+backward throughput of the first models, and packed vs padded attention.

    .venv/bin/python bench/bench_models.py [--seconds 0.5] [--batch-size 32] [--threads 1]

1. For fcn and transformer at every size (xxl only with --sizes), structures/s and atoms/s of
   one training step (forward, a squared-output loss, backward) on batches whose sizes follow
   the embedded set's distribution (1–~100 atoms, mostly 10–40): read from an OMat24-format
   directory (--data DIR, via fairchem's AseDBDataset), else unrelaxed parents from the
   embedded generator (`matscale.data.parents.build_parent`), else random metal cells with
   log-normal atom counts (median 20).
2. The transformer's encoder with each packing mode (`matscale.models.packing`: bucket,
   block, loop) against `nn.TransformerEncoder` with the same parameter count that pads
   every structure to the batch maximum with a key-padding mask. Both start from and return
   packed tokens (T, d), so the padded one pays its gather/scatter like a real model would.
   Printed as a throughput RATIO packed/padded (> 1: packing is faster), measured in this run.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

from matscale.data.batch import collate
from matscale.models import build, count_parameters, sizes
from matscale.models.packing import MODES, plan
from matscale.models.transformer import NUM_LATTICE_TOKENS, EncoderLayer

METALS = ["Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"]
DEVICE = torch.device("cpu")


def synthetic_structures(n: int, seed: int = 0) -> list:
    """Random alloy cells with log-normal atom counts (median 20, clipped to 1–100)."""
    from ase import Atoms

    rng = np.random.default_rng(seed)
    counts = np.clip(np.rint(rng.lognormal(np.log(20), 0.5, n)), 1, 100).astype(int)
    out = []
    for N in counts:
        length = (12.0 * N) ** (1 / 3)  # ~12 Å³ per atom
        cell = np.diag([length] * 3) + rng.normal(0, 0.3, (3, 3))
        out.append(Atoms(symbols=list(rng.choice(METALS, N)), scaled_positions=rng.random((N, 3)),
                         cell=cell, pbc=True))
    return out


def parent_structures(n: int, seed: int = 0) -> list:
    """Unrelaxed parents of the embedded data generator (its size distribution), rattled."""
    from matscale.data.parents import build_parent

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        atoms, _ = build_parent(rng, tuple(METALS))
        atoms.positions += rng.normal(0.0, 0.05, atoms.positions.shape)
        out.append(atoms)
    return out


def dataset_structures(path: str, n: int, seed: int = 0) -> list:
    from fairchem.core.datasets import AseDBDataset

    ds = AseDBDataset(config={"src": path})
    idx = np.random.default_rng(seed).choice(len(ds), size=min(n, len(ds)), replace=False)
    return [ds.get_atoms(int(i)) for i in idx]


def _default_set_available() -> bool:
    """True when $MATSCALE_DATA (or the embedded default) holds a training split."""
    import os
    from pathlib import Path

    root = os.environ.get("MATSCALE_DATA")
    if root:
        return (Path(root) / "train").is_dir()
    try:
        from matscale.data.default import default_root
        return (Path(default_root()) / "train").is_dir()
    except Exception:
        return False


CLOCK = time.process_time  # CPU seconds of this process (main() switches to synced wall time on CUDA)


def time_steps(step, seconds: float, min_steps: int = 2) -> float:
    """Median seconds per call of `step` after one warm-up call, for ≥ `seconds` in total.

    CPU seconds on CPU (single-threaded, so other load on a shared machine inflates them far
    less than wall time), synchronised wall seconds on CUDA."""
    step()
    times, start = [], CLOCK()
    while len(times) < min_steps or CLOCK() - start < seconds:
        t = CLOCK()
        step()
        times.append(CLOCK() - t)
    return statistics.median(times)


def model_step(model, batch):
    def step():
        out = model(batch)
        loss = sum((v.float() ** 2).mean() for v in out.values())
        loss.backward()
        model.zero_grad(set_to_none=True)
    return step


def bench_models(batches, archs, size_filter, seconds):
    print(f"{'arch':<12}{'size':<6}{'params':>12}{'non-emb':>12}{'struct/s':>11}{'atoms/s':>11}{'ms/step':>9}")
    n_struct = statistics.mean(b.num_structures for b in batches)
    n_atoms = statistics.mean(b.num_atoms for b in batches)
    for arch in archs:
        for size in sizes(arch):
            if size not in size_filter:
                continue
            torch.manual_seed(0)
            model = build(arch, size).to(DEVICE)
            total, non_emb = count_parameters(model)
            it = iter(batches * 1000)
            dt = time_steps(lambda: model_step(model, next(it))(), seconds)
            print(f"{arch:<12}{size:<6}{total:>12,}{non_emb:>12,}{n_struct / dt:>11.1f}{n_atoms / dt:>11.0f}{dt * 1e3:>9.1f}",
                  flush=True)


class PackedEncoder(nn.Module):
    def __init__(self, d, layers, heads, mode):
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d, heads) for _ in range(layers))
        self.mode = mode

    def forward(self, x, sequence, num_sequences):
        packing = plan(sequence, num_sequences, self.mode)
        x = packing.enter(x)
        for layer in self.layers:
            x = layer(x, packing, in_layout=True)
        return packing.leave(x)


class PaddedEncoder(nn.Module):
    """nn.TransformerEncoder (pre-LN, GELU, 4·d feed-forward) on structures padded to the batch max."""

    def __init__(self, d, layers, heads):
        super().__init__()
        layer = nn.TransformerEncoderLayer(d, heads, 4 * d, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def forward(self, x, sequence, num_sequences):
        # tokens are sorted by sequence (atoms of each structure, then its lattice tokens)
        lengths = torch.bincount(sequence, minlength=num_sequences)
        L = int(lengths.max())
        offset = torch.arange(L, device=x.device)
        valid = offset < lengths.unsqueeze(1)  # (B, L)
        starts = torch.cumsum(lengths, 0) - lengths
        index = torch.where(valid, starts.unsqueeze(1) + offset, 0)
        out = self.encoder(x[index], src_key_padding_mask=~valid)
        return out[valid]


def bench_packing(batches, ladder, seconds, rounds=3):
    print("\nencoder forward+backward, tokens = atoms + 3 lattice tokens per structure;"
          " ratio = throughput(packed) / throughput(padded to batch max)")
    inputs = []
    for b in batches:
        # sort tokens by structure so the padded encoder can gather contiguous runs
        counts = b.natoms + NUM_LATTICE_TOKENS
        inputs.append((torch.repeat_interleave(torch.arange(b.num_structures, device=counts.device), counts), b.num_structures))
    pad_frac = statistics.mean(
        1 - float((b.natoms + 3).sum()) / (b.num_structures * float((b.natoms + 3).max())) for b in batches)
    rows_bound = statistics.mean(
        b.num_structures * float((b.natoms + 3).max()) / float((b.natoms + 3).sum()) for b in batches)
    print(f"padding would waste {pad_frac:.0%} of token rows on these batches: every linear layer of the padded "
          f"encoder runs on {rows_bound:.2f}x the rows, the most packing can gain where linear layers dominate "
          f"(large d_model)")
    print(f"{'size':<6}{'params':>11}" + "".join(f"{m + ' ms':>11}" for m in (*MODES, "padded"))
          + "".join(f"{m + '/pad':>11}" for m in MODES))
    for size, (d, layers, heads) in ladder.items():
        torch.manual_seed(0)
        models = {m: PackedEncoder(d, layers, heads, m) for m in MODES}
        models["padded"] = PaddedEncoder(d, layers, heads)
        counts = {m: sum(p.numel() for p in mod.parameters()) for m, mod in models.items()}
        assert len(set(counts.values())) == 1, counts
        models = {m: mod.to(DEVICE) for m, mod in models.items()}
        data = [(torch.randn(len(seq), d, device=DEVICE), seq.to(DEVICE), B) for seq, B in inputs]
        best = {m: float("inf") for m in models}
        for _ in range(rounds):  # interleave variants so machine load affects all alike
            for m, mod in models.items():
                it = iter(data * 1000)

                def step(mod=mod, it=it):
                    x, seq, B = next(it)
                    x = x.requires_grad_(True)
                    mod(x, seq, B).square().mean().backward()
                    mod.zero_grad(set_to_none=True)
                best[m] = min(best[m], time_steps(step, seconds / rounds))
        print(f"{size:<6}{counts['padded']:>11,}" + "".join(f"{best[m] * 1e3:>11.1f}" for m in models)
              + "".join(f"{best['padded'] / best[m]:>11.2f}" for m in MODES), flush=True)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=0.5, help="measuring time per configuration")
    p.add_argument("--batch-size", type=int, default=32, help="structures per batch")
    p.add_argument("--batches", type=int, default=4, help="distinct batches cycled through")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--data", help="OMat24-format directory to sample structures from (default: synthetic)")
    p.add_argument("--archs", nargs="*", default=["fcn", "transformer"])
    p.add_argument("--sizes", nargs="+", default=["xs", "s", "m", "l", "xl"])
    p.add_argument("--skip-packing", action="store_true")
    p.add_argument("--parents", action="store_true",
                   help="use the embedded generator's unrelaxed parents even when the default set exists")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    global CLOCK, DEVICE
    DEVICE = torch.device(args.device)
    if DEVICE.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(f"--device {args.device}: no CUDA device is visible here")

        def CLOCK():  # noqa: N802 - synchronised wall clock
            torch.cuda.synchronize()
            return time.perf_counter()
    n = args.batch_size * args.batches
    if args.data:
        structures, source = dataset_structures(args.data, n), args.data
    elif not args.parents and _default_set_available():
        from _common import default_root, default_structures
        structures, source = default_structures(n, seed=1), f"the default set's training split ({default_root()})"
    else:
        try:
            structures, source = parent_structures(n), "embedded-generator parents"
        except Exception as exc:  # the data package's generator is absent or changed
            structures, source = synthetic_structures(n), f"random cells ({type(exc).__name__}: {exc})"
    batches = [collate(structures[i:i + args.batch_size], labels=False).to(DEVICE)
               for i in range(0, n, args.batch_size)]
    natoms = np.array([len(a) for a in structures])
    print(f"{len(structures)} structures from {source}, atoms per structure: min {natoms.min()}, median {np.median(natoms):.0f}, "
          f"mean {natoms.mean():.1f}, max {natoms.max()}; batch size {args.batch_size}; threads {args.threads}")
    bench_models(batches, args.archs, set(args.sizes), args.seconds)
    if not args.skip_packing:
        from matscale.models.transformer import SIZES
        ladder = {s: (SIZES[s]["d_model"], SIZES[s]["num_layers"], SIZES[s]["num_heads"])
                  for s in ("s", "m", "l") if s in args.sizes}
        bench_packing(batches, ladder, 3 * args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
