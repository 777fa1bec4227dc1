"""The ``cellnb`` command: prepare, train, reconstruct, generate, describe, run.

User errors (bad arguments, missing inputs, existing outputs) print one line
``cellnb <command>: error: ...`` and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from cellnb.config import PROFILES

__all__ = ["main", "build_parser"]

log = logging.getLogger("cellnb")

USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, KeyError)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON ({err})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, e.g. '{\"train\": {\"epochs\": 5}}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cellnb",
        description="Generative models of living 3D cell shapes over time (SIREN auto-decoders of 3D+t SDFs).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("prepare", help="build an SDF data set from phantoms, TIFF masks or C. elegans data")
    p.add_argument("--source", required=True, help="phantoms:dividing|phantoms:filopodial|phantoms:deforming|tiff:PATH|celegans")
    p.add_argument("--out", required=True, help="output folder (one .h5 per sequence)")
    p.add_argument("--n-sequences", type=int, default=8, help="phantoms: how many; celegans: the most to keep")
    p.add_argument("--frames", type=int, default=12, help="frames per sequence")
    p.add_argument("--size", type=int, default=48, help="cube side in voxels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default=None, help="folder holding celegans-3dmms (default $CELLNB_DATA_DIR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing data set")
    _add_common(p)

    p = sub.add_parser("train", help="fit the auto-decoder to an SDF data set")
    p.add_argument("--data", required=True, help="folder of .h5 SDF files")
    p.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="run directory (checkpoints, logs, metrics); under torchrun spell it --run-dir")
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    p.add_argument("--seed", type=int, default=None, help="override the profile's seed")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over, replacing existing checkpoints")
    p.add_argument("--set", type=_json, default={}, metavar="JSON", help="profile overrides, e.g. '{\"train\": {\"lr_decoder\": 1e-4}}'")
    _add_common(p)

    p = sub.add_parser("reconstruct", help="decode the learned codes and score them against the training data")
    p.add_argument("--run", required=True)
    p.add_argument("--size", type=int, default=None, help="grid side (default: the training size)")
    p.add_argument("--frames", type=int, default=None, help="frame count (default: the training count)")
    p.add_argument("--device", default=None)
    _add_common(p)

    p = sub.add_parser("generate", help="new time-evolving shapes from latent codes")
    p.add_argument("--run", "--run-dir", dest="run", required=True, help="trained run (under torchrun: --run-dir)")
    p.add_argument("--n", type=int, default=4, help="number of sequences")
    p.add_argument("--strategy", default="gaussian", help="random|gaussian|perturb|interpolate")
    p.add_argument("--frames", type=int, default=12)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sigma", type=float, default=None, help="noise scale of random/perturb codes")
    p.add_argument("--format", dest="formats", action="append", default=None,
                   help="h5|tiff|mesh|gif; repeat for several (default h5)")
    p.add_argument("--method", default="narrow", choices=("narrow", "dense"))
    p.add_argument("--out", default=None, help="output folder (default RUN/generated/STRATEGY)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", default=None)
    _add_common(p)

    p = sub.add_parser("describe", help="per-frame shape descriptors of masks or SDFs, as CSV")
    p.add_argument("input", help="folder of TIFF frames, multi-frame TIFF, .h5 SDF, or a folder of these")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
                   help="voxel size for masks that lack it (default 1 1 1)")
    p.add_argument("--overwrite", action="store_true")
    _add_common(p)

    p = sub.add_parser("run", help="the main job: every notebook for every data set, figures regenerated")
    p.add_argument("--profile", default="quick", choices=PROFILES)
    p.add_argument("--runs", default="runs", help="parent folder of the run directories")
    p.add_argument("--figures", default="figures", help="where the figures go")
    p.add_argument("--datasets", nargs="+", default=None, help="subset of: dividing filopodial celegans")
    p.add_argument("--set", type=_json, default={}, metavar="JSON", help="profile overrides for every notebook")
    p.add_argument("--readme", default="README.md", help="README whose results section is regenerated ('' to skip)")
    p.add_argument("--data-dir", default=None, help="folder holding celegans-3dmms (default $CELLNB_DATA_DIR)")
    p.add_argument("--overwrite", action="store_true", help="redo existing run directories")
    _add_common(p)
    return parser


def _prepare(args) -> str:
    from cellnb.prepare import prepare

    paths = prepare(
        args.source, args.out, n_sequences=args.n_sequences, frames=args.frames, size=args.size,
        seed=args.seed, data_dir=args.data_dir, overwrite=args.overwrite, progress=not args.quiet,
    )
    return f"prepared {len(paths)} sequences from {args.source} into {args.out} ({args.size}^3, {args.frames} frames)"


def _train(args) -> str:
    from cellnb.train import train

    overrides = dict(args.set)
    train_over = dict(overrides.get("train", {}))
    if args.epochs is not None:
        train_over["epochs"] = args.epochs
    if args.seed is not None:
        train_over["seed"] = args.seed
    if train_over:
        overrides["train"] = train_over
    summary = train(
        args.data, args.run, profile=args.profile, overrides=overrides, device=args.device,
        resume=args.resume, overwrite=args.overwrite, progress=not args.quiet,
    )
    return f"trained {summary['epochs']} epochs in {summary['seconds']:.0f} s; checkpoint in {args.run}/checkpoints"


def _reconstruct(args) -> str:
    from cellnb.train import reconstruct

    m = reconstruct(args.run, size=args.size, frames=args.frames, device=args.device, progress=not args.quiet)
    if "dice_mean" in m:
        return f"mean Dice {m['dice_mean']:.3f}, mean IoU {m['iou_mean']:.3f} over {m['n_sequences']} sequences"
    return f"reconstructed {m['n_sequences']} sequences"


def _generate(args) -> str:
    from cellnb.generate import generate

    s = generate(
        args.run, n=args.n, strategy=args.strategy, frames=args.frames, size=args.size, seed=args.seed,
        method=args.method, formats=tuple(args.formats or ("h5",)), out=args.out, overwrite=args.overwrite,
        sigma=args.sigma, device=args.device, progress=not args.quiet,
    )
    return f"generated {s['n']} sequences ({args.strategy}) into {s['out']} in {s['seconds']:.1f} s"


def _describe(args) -> str:
    from cellnb.descriptors import describe_path
    from cellnb.io import atomic_path

    table = describe_path(args.input, spacing=args.spacing)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        table.to_csv(tmp, index=False)
    return f"described {table['sequence'].nunique()} sequences, {len(table)} frames -> {args.out}"


def _run(args) -> str:
    from cellnb.runner import run_all

    summary = run_all(
        profile=args.profile, runs=args.runs, figures=args.figures, datasets=args.datasets,
        overrides=args.set, readme=args.readme or None, overwrite=args.overwrite, data_dir=args.data_dir,
        progress=not args.quiet,
    )
    return f"ran {', '.join(summary['datasets'])}; figures in {args.figures}, runs in {args.runs}"


_HANDLERS = {
    "prepare": _prepare,
    "train": _train,
    "reconstruct": _reconstruct,
    "generate": _generate,
    "describe": _describe,
    "run": _run,
}


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        message = _HANDLERS[args.command](args)
    except USER_ERRORS as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"cellnb {args.command}: error: {text}", file=sys.stderr)
        return 2
    if message:
        print(message)
    return 0
