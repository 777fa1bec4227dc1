"""Generated sets with and without redrawing implausible cells, judged against held-out real cells.

For each latent strategy, two sets of ``--n`` cells from one seed: as drawn,
and ``+plausible`` (:mod:`cellnb.generate`: codes whose cells break the
family's topology are given up and redrawn).  Both are judged by
:func:`cellnb.evaluate.evaluate_run` against the run's held-out sequences, and
the script prints one row per set: codes drawn, the share plausible as drawn
(the decoder's own rate), the kept set's share, memorisation, 1-NN accuracy,
W1/sd and variety of volume, and the decoding time as a ratio to the
unscreened set of the same strategy.

By default the run is the packaged C. elegans model (``cellnb models``) with
its data prepared again from the local C. elegans copy (the quick profile's
data section: the same 24 training and 8 held-out sequences); the script
checks that the prepared training sequences are the model's.  Everything is
written into a temporary copy; the run given is not changed.

Usage::

    python benchmarks/plausible_sets.py --data-dir ../shared/data/real     # about 5 minutes on 2 CPU cores
    python benchmarks/plausible_sets.py --run runs/celegans --strategies gmm --n 8
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from cellnb.checkpoint import load_trained
from cellnb.evaluate import evaluate_run
from cellnb.generate import PLAUSIBLE, generate, parse_set
from cellnb.prepare import prepare
from cellnb.pretrained import pretrained_run
from cellnb.profile import load_profile
from cellnb.workspace import RunDir

__all__ = ["main"]


def _packaged_run(folder: Path, data_dir) -> RunDir:
    """The packaged C. elegans model in ``folder`` with its data prepared again (checked to be the same)."""
    shutil.copytree(pretrained_run("celegans").root, folder)
    run = RunDir(folder)
    prepare("celegans", run.data, load_profile("quick").data, data_dir=data_dir, progress=False)
    _, _, names, _ = load_trained(run, device="cpu")
    prepared = [f.stem for f in run.data_files()]
    if prepared != list(names):
        raise SystemExit(f"the prepared training sequences ({len(prepared)}) are not the packaged model's "
                         f"({len(names)}); is --data-dir the same C. elegans copy?")
    return run


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default=None, help="a trained run with held-out data (default: the packaged model)")
    parser.add_argument("--data-dir", default=None, help="folder holding celegans-3dmms (default $CELLNB_DATA_DIR)")
    parser.add_argument("--strategies", nargs="+", default=["random", "gmm", "kde"])
    parser.add_argument("--n", type=int, default=16, help="cells per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "run"
        if args.run is None:
            run = _packaged_run(folder, args.data_dir)
        else:
            shutil.copytree(args.run, folder, ignore=shutil.ignore_patterns("generated"))
            run = RunDir(folder)
        seconds, screens = {}, {}
        for strategy in args.strategies:
            for spec in (strategy, strategy + PLAUSIBLE):
                start = time.perf_counter()
                summary = generate(run, **parse_set(spec), n=args.n, seed=args.seed, out=run.generated_set(spec).root,
                                   progress=False)
                seconds[spec], screens[spec] = time.perf_counter() - start, summary["screen"]
        sets = evaluate_run(run)["sets"]
    print(f"{args.n} cells per set, seed {args.seed}, judged against the held-out sequences")
    print("| set | drawn | topology as drawn | topology G | memorisation | 1-NN acc. | W1/sd volume "
          "| variety volume / area / sphericity | seconds (ratio to as drawn) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for spec, s in sets.items():
        base = spec.removesuffix(PLAUSIBLE)
        drawn = screens[spec]["drawn"] if screens[spec] else args.n
        variety = " / ".join(f"{s['variety'][k]:.2f}" for k in ("volume", "surface_area", "sphericity"))
        print(f"| {spec} | {drawn} | {s['drawn_plausible']:.2f} | {s['topology_plausible']:.2f} "
              f"| {s['memorisation']:.3f} | {s['nn1_accuracy']:.3f} | {s['w1_norm']['volume']:.2f} | {variety} "
              f"| {seconds[spec]:.0f} ({seconds[spec] / seconds[base]:.1f}x) |")


if __name__ == "__main__":
    main()
