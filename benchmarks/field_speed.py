"""Dense vs narrow-band field evaluation on the paper architecture (issue 4 speed targets).

A randomly initialised decoder gives a noise field with no surface, so by
default the benchmark first fits the paper decoder (``cellnb.model.PAPER``,
216,137 parameters) for a few hundred steps to an analytic cell that divides
over time: two spheres of radius 0.3 moving apart along ``c0`` (network
units), SDF clamped at 0.25 and divided by 0.3 like the training data.  With
``--run`` it uses a trained run's first learned code instead.

For each grid size it evaluates one frame densely and by the narrow band,
and prints network evaluations, seconds and mask IoU as ratios.  Targets at
256^3 (issue 14): a narrow-band frame in <= 5 s, >= 30x fewer evaluations
than dense, masks identical to dense (IoU 1.0, no voxel differs).

Usage::

    python benchmarks/field_speed.py                 # 128^3 and 256^3, ~4-8 min on 2 CPU cores
    python benchmarks/field_speed.py --sizes 128     # quicker
    python benchmarks/field_speed.py --run runs/dividing --device cuda
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from cellnb.checkpoint import load_trained
from cellnb.field import DEFAULT_MARGIN, compare_methods
from cellnb.model import PAPER, Decoder

__all__ = ["fit_paper_decoder", "main"]

OFFSET, RADIUS = 0.6, 0.3  # half the final separation of the two spheres and their radius (network units)
CLAMP, SCALE = 0.25, 0.3  # training-like normalisation of the analytic SDF
NEAR = 0.1  # |SDF| (network units) of the points that make up NEAR_FRACTION of each batch
NEAR_FRACTION = 0.7
TARGETS = {"evaluations": 30.0, "narrow_seconds": 5.0}  # at 256^3 (issue 14), besides identical masks


def two_spheres(xyzt: np.ndarray) -> np.ndarray:
    """Analytic SDF (network units) of two spheres separating along c0 as t goes from -1 to 1."""
    sep = OFFSET * (xyzt[:, 3] + 1) / 2
    lateral = xyzt[:, 1] ** 2 + xyzt[:, 2] ** 2
    return np.minimum(np.sqrt((xyzt[:, 0] - sep) ** 2 + lateral), np.sqrt((xyzt[:, 0] + sep) ** 2 + lateral)) - RADIUS


def fit_paper_decoder(*, steps: int, batch: int, lr: float, seed: int, device) -> tuple[Decoder, torch.Tensor]:
    """The paper decoder fitted to the analytic dividing cell with one fixed random code."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    decoder = Decoder(PAPER).to(device)
    code = (torch.randn(PAPER.code_length) / PAPER.code_length**0.5).to(device)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    n_near = int(batch * NEAR_FRACTION)
    for _ in range(steps):
        pool = rng.uniform(-1, 1, (batch * 8, 4)).astype(np.float32)
        near = pool[np.abs(two_spheres(pool)) < NEAR][:n_near]
        xyzt = np.concatenate([near, pool[-(batch - len(near)) :]])
        target = torch.from_numpy((np.minimum(two_spheres(xyzt), CLAMP) / SCALE).astype(np.float32)).to(device)
        pred = decoder.forward_grouped(code[None], torch.from_numpy(xyzt).to(device)[None])[0]
        loss = (pred - target).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    decoder.eval()
    return decoder, code


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256], help="grid sides (default 128 256)")
    parser.add_argument("--time", type=float, default=0.5, help="network time of the frame (default 0.5)")
    parser.add_argument("--run", default=None, help="use this trained run's first code instead of fitting")
    parser.add_argument("--fit-steps", type=int, default=400, help="Adam steps fitting the paper decoder")
    parser.add_argument("--fit-batch", type=int, default=4096, help="points per fitting step")
    parser.add_argument("--fit-lr", type=float, default=3e-4)
    parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="narrow-band safety factor")
    parser.add_argument("--coarse", type=int, default=None, help="narrow-band coarsest stride (default: auto)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    if args.run:
        decoder, codes, names, _ = load_trained(args.run, device=args.device)
        code, source = codes[0], f"run {args.run}, code of {names[0]}"
    else:
        decoder, code = fit_paper_decoder(steps=args.fit_steps, batch=args.fit_batch, lr=args.fit_lr,
                                          seed=args.seed, device=args.device)
        source = f"paper decoder fitted {args.fit_steps} steps to two separating spheres"
    fit_s = time.perf_counter() - start
    print(f"field: {source} ({decoder.n_parameters():,} parameters, {fit_s:.0f} s); frame t={args.time}; "
          f"{torch.get_num_threads()} threads on {args.device}; margin {args.margin}", flush=True)
    print(f"{'size':>6} {'dense evals':>12} {'narrow evals':>13} {'evals x':>8} {'dense s':>8} {'narrow s':>9} "
          f"{'time x':>7} {'IoU':>9} {'components d/n':>15}")
    rows = []
    for size in args.sizes:
        r = compare_methods(decoder, code, shape=size, times=[args.time], margin=args.margin, coarse=args.coarse,
                            device=args.device)
        rows.append(r)
        print(f"{size:>5}^3 {r['dense_evaluations']:>12,} {r['narrow_evaluations']:>13,} {r['evaluations_ratio']:>8.1f} "
              f"{r['dense_seconds']:>8.1f} {r['narrow_seconds']:>9.2f} {r['time_ratio']:>7.1f} {r['iou']:>9.6f} "
              f"{r['components_dense'][0]:>7}/{r['components_narrow'][0]}", flush=True)
    ok = True
    for r in rows:
        if r["shape"] == [256, 256, 256]:
            checks = {
                f"evaluations ratio >= {TARGETS['evaluations']}": r["evaluations_ratio"] >= TARGETS["evaluations"],
                f"narrow band <= {TARGETS['narrow_seconds']} s": r["narrow_seconds"] <= TARGETS["narrow_seconds"],
                "masks identical (IoU 1.0)": r["voxels_differing"] == 0,
                "same component count": r["components_dense"] == r["components_narrow"],
            }
            for name, passed in checks.items():
                print(f"256^3 target {name}: {'met' if passed else 'MISSED'}")
                ok &= passed
    print(f"total {time.perf_counter() - start:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"source": source, "time": args.time, "margin": args.margin, "threads": torch.get_num_threads(),
                       "rows": rows}, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
