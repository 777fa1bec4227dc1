"""Training seconds to a mean reconstruction Dice of 0.90: cellnb's quick profile against the reference loop.

Both loops train from scratch on the quick profile's data (``phantoms:dividing``
with ``cellnb.profile.load_profile("quick").data``; ``--quick`` keeps fewer
sequences), one after the other in the same process:

* cellnb: :class:`cellnb.train.Trainer` with the quick profile (quick decoder);
* reference: ``ReferenceLoop`` of ``benchmarks/train_throughput.py``, which
  trains step for step the way the official implementation does, with its
  settings (paper decoder, ``SampleFraction`` 0.06; ``--reference-model quick``
  puts the quick decoder in it instead).

Every ``--every`` epochs (``--every-reference`` for the reference) training
pauses and the mean Dice of the reconstructed masks over all sequences and
frames is measured (narrow band, the same masks as dense).  The clock counts
training only, not these evaluations.  Each loop stops at Dice 0.90 or when
its clock passes ``--cap`` seconds, and is then reported as "not reached in
X s" with its last Dice.  The printed ratio is cellnb / reference seconds
(below 1: cellnb is faster); when the reference does not get there, it is an
upper bound.

Usage::

    python benchmarks/time_to_quality.py --quick    # 8 sequences (6 for training), ~10 min on 2 shared cores
    python benchmarks/time_to_quality.py            # the quick profile's 24 training sequences, ~40 min

A reference epoch (one official step per frame, paper decoder) can take
minutes on 2 cores, so its clock may pass the cap by up to one epoch.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch
from train_throughput import (  # benchmarks/train_throughput.py, next to this file
    OFFICIAL_WORKERS,
    TARGET_DICE,
    CellnbLoop,
    ReferenceLoop,
    mean_dice,
    with_threads,
)

from cellnb.prepare import prepare
from cellnb.profile import load_profile
from cellnb.sampling import SDFDataset

__all__ = ["time_to_dice", "main"]

log = logging.getLogger("time_to_quality")

QUICK_SEQUENCES = 8  # --quick: sequences prepared (the holdout split keeps 6 for training)


def time_to_dice(loop, threads, dataset, truth, *, cap: float, every: int) -> dict:
    """Train ``loop`` until mean Dice >= :data:`TARGET_DICE`, evaluated every ``every`` epochs, or ``cap`` seconds.

    Returns
    -------
    dict
        ``seconds`` (training seconds to the target, None if not reached),
        ``dice`` (last mean Dice), ``epochs``, ``trained_seconds`` (the
        whole training clock) and ``curve`` (``[seconds, epoch, dice]`` per
        evaluation).
    """
    clock, score, curve = 0.0, 0.0, []
    while clock < cap:
        for _ in range(every):  # an evaluation after every ``every`` epochs, and at the cap
            t0 = time.perf_counter()
            with_threads(threads, loop.run_epoch)
            clock += time.perf_counter() - t0
            if clock >= cap:
                break
        score = with_threads(threads, mean_dice, loop, dataset, truth)
        curve.append([clock, loop.epoch, score])
        log.info("    %6.1f s, epoch %4d: mean Dice %.3f", clock, loop.epoch, score)
        if score >= TARGET_DICE:
            return {"seconds": clock, "dice": score, "epochs": loop.epoch, "trained_seconds": clock, "curve": curve}
    return {"seconds": None, "dice": score, "epochs": loop.epoch, "trained_seconds": clock, "curve": curve}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SEQUENCES} sequences instead of the profile's")
    p.add_argument("--cap", type=float, default=240.0, help="training seconds each loop may take (default 240)")
    p.add_argument("--every", type=int, default=5, help="cellnb: epochs between Dice evaluations")
    p.add_argument("--every-reference", type=int, default=1, help="reference: epochs between Dice evaluations")
    p.add_argument("--reference-model", choices=("paper", "quick"), default="paper",
                   help="decoder of the reference loop (default paper, the official architecture)")
    p.add_argument("--sample-fraction", type=float, default=0.06,
                   help="reference: share of a frame's voxels drawn as its points (official SampleFraction)")
    p.add_argument("--workers", type=int, default=OFFICIAL_WORKERS, help="reference: DataLoader worker processes")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of both loops (default: cellnb its profile's, the reference torch's)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("cellnb").setLevel(logging.WARNING)
    quick = load_profile("quick")
    data = quick.data
    n_sequences = QUICK_SEQUENCES if args.quick else data.n_sequences
    reference_model = load_profile(args.reference_model).model
    results = {"args": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        prepare("phantoms:dividing", Path(tmp) / "set", n_sequences=n_sequences, frames=data.frames, size=data.size,
                seed=data.seed, progress=False)
        dataset = SDFDataset(Path(tmp) / "set")
        truth = [dataset.sequence(s) < 0 for s in range(dataset.n_sequences)]
        log.info("time to mean Dice %.2f, data: %d dividing phantoms x %d frames x %d^3 (quick profile); cap %.0f s "
                 "of training each", TARGET_DICE, dataset.n_sequences, dataset.n_frames, data.size, args.cap)
        loops = {
            "cellnb": (lambda: CellnbLoop(dataset, quick.model, quick.train),
                       args.threads or quick.train.num_threads, args.every),
            "reference": (lambda: ReferenceLoop(dataset, reference_model, fraction=args.sample_fraction,
                                                workers=args.workers),
                          args.threads, args.every_reference),
        }
        for name, (make, threads, every) in loops.items():
            log.info("  %s (evaluated every %d epochs, %s threads):", name, every, threads or torch.get_num_threads())
            results[name] = time_to_dice(with_threads(threads, make), threads, dataset, truth, cap=args.cap,
                                         every=every)
    for name in loops:
        r = results[name]
        where = (f"{r['seconds']:.1f} s ({r['epochs']} epochs)" if r["seconds"] is not None
                 else f"not reached in {r['trained_seconds']:.0f} s ({r['epochs']} epochs)")
        log.info("time to Dice %.2f %-10s %s, last Dice %.3f", TARGET_DICE, name, where, r["dice"])
    ours, ref = results["cellnb"], results["reference"]
    if ours["seconds"] is not None:
        ratio = ours["seconds"] / (ref["seconds"] if ref["seconds"] is not None else ref["trained_seconds"])
        results["ratio"] = ratio
        log.info("ratio cellnb / reference seconds to Dice %.2f: %s%.3f", TARGET_DICE,
                 "" if ref["seconds"] is not None else "< ", ratio)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
