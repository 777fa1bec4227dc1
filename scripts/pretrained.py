"""Regenerate the pretrained models shipped in ``cellnb/pretrained/`` (issue 13).

Package the main job's runs (trained with the quick profile, seeded, bit for
bit on CPU)::

    python scripts/pretrained.py --from-runs runs

or prepare, train and evaluate each from scratch with the quick profile
(C. elegans needs its data: ``--data-dir`` or ``$CELLNB_DATA_DIR``)::

    python scripts/pretrained.py --train --runs /tmp/pretrained-runs --data-dir DIR

Each model's card line is printed (the line ``cellnb models`` prints).  With
``--check`` nothing is written: the package data are compared with freshly
packaged runs (content hashes of the weights, codes and latent model, and
the card's numbers) and the exit status is 1 when they differ.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from cellnb import pretrained
from cellnb.runner import DATASETS

MODELS = ("dividing", "filopodial", "celegans")
PROFILE = "quick"
COMPARED = ("content_sha256", "latent_sha256", "data", "evaluation", "training")  # what --check compares


def train_run(name: str, run: Path, *, data_dir=None) -> Path:
    """Prepare, train, reconstruct, generate and evaluate data set ``name`` as the main job's notebooks do."""
    from cellnb.evaluate import evaluate_run
    from cellnb.generate import generate, parse_set
    from cellnb.prepare import prepare
    from cellnb.profile import load_profile
    from cellnb.reconstruct import reconstruct
    from cellnb.train import train
    from cellnb.workspace import RunDir

    source, settings = DATASETS[name]
    config = load_profile(PROFILE, settings)
    run = RunDir(run)
    prepare(source, run, config.data, data_dir=data_dir, overwrite=True)
    train(run.data, run, model_config=config.model, train_config=config.train, device="cpu", overwrite=True)
    run.update_config("profile", config.name)
    reconstruct(run, device="cpu")
    for spec in config.generate.strategies:
        generate(run, config.generate, **parse_set(spec), formats=("h5",),
                 out=run.generated_set(spec).root, overwrite=True, device="cpu")
    evaluate_run(run, config.evaluate)
    return run.root


def differences(name: str, new: dict, dest: Path) -> list[str]:
    """What differs between the packaged card of ``name`` in ``dest`` and a freshly written ``new`` one."""
    if name not in pretrained.available(root=dest):
        return [f"{name}: not in {dest}"]
    old = pretrained.read_card(name, root=dest)
    return [f"{name}: {key} differs" for key in COMPARED if old.get(key) != new.get(key)]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--from-runs", metavar="RUNS", help="parent folder of the main job's run directories")
    how.add_argument("--train", action="store_true", help="prepare and train each data set from scratch")
    parser.add_argument("--runs", default=None, help="with --train: where the runs go (default a temporary folder)")
    parser.add_argument("--data-dir", default=None, help="folder holding celegans-3dmms (default $CELLNB_DATA_DIR)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--dest", default=str(pretrained.PACKAGE_DATA), help="package folder of the models")
    parser.add_argument("--check", action="store_true", help="compare with the package data; write nothing")
    args = parser.parse_args(argv)
    dest = Path(args.dest)
    with tempfile.TemporaryDirectory(prefix="cellnb-pretrained-") as scratch:
        scratch = Path(scratch)
        runs = Path(args.from_runs) if args.from_runs else Path(args.runs or scratch / "runs")
        problems = []
        for name in args.models:
            run = runs / name if args.from_runs else train_run(name, runs / name, data_dir=args.data_dir)
            try:
                card = pretrained.package(run, name, scratch / "fresh" if args.check else dest, overwrite=True)
            except (ValueError, FileNotFoundError) as err:
                print(f"{name}: error: {err}", file=sys.stderr)
                return 2
            print(pretrained.card_line(card))
            if args.check:
                problems += differences(name, card, dest)
    for problem in problems:
        print(problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
