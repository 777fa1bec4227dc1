"""The ``cellnb`` command: prepare, train, reconstruct, fit, generate, models, describe, microscopy, run.

Options left out take the profile's value (``--profile``, default ``quick``;
``generate`` defaults to the profile the run was trained with).  User errors
(bad arguments, missing inputs, existing outputs, unwritable folders, a run in
use) print one line ``cellnb <command>: error: ...`` and exit with status 2,
without a traceback and before anything is written.  Ctrl-C prints one line
saying what is intact and exits with 130 (SIGTERM: 143), leaving no
temporary files behind.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys

from cellnb.config import profile_names
from cellnb.errors import Interrupted
from cellnb.signals import Terminated, handled

__all__ = ["main", "build_parser"]

log = logging.getLogger("cellnb")

EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line naming the option and where help is."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see `{self.prog} --help`\n")


def _non_negative(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None


def _positive(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _json(text: str) -> dict:
    from cellnb.profile import parse_overrides

    try:
        return parse_overrides(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _common(p: argparse.ArgumentParser, *, profile: bool = True, overrides: bool = True) -> None:
    if profile:
        p.add_argument("--profile", choices=profile_names(), default=None, help="parameter profile (default quick)")
    if overrides:
        p.add_argument("--set", type=_json, default={}, metavar="JSON",
                       help="profile overrides, e.g. '{\"train\": {\"lr_decoder\": 1e-4}}'")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cellnb",
        description="Generative models of living 3D cell shapes over time (SIREN auto-decoders of 3D+t SDFs).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("prepare", help="build an SDF data set from phantoms, TIFF masks, label time-lapses, CTC "
                                       "folders or C. elegans data")
    p.add_argument("--source", required=True,
                   help="phantoms:dividing|filopodial|deforming, tiff:PATH|GLOB (single cells), labels:PATH "
                        "(a multi-cell label time-lapse), ctc:PATH (a CTC folder with its lineage) or celegans")
    p.add_argument("--out", required=True, help="output folder (one .h5 per sequence)")
    p.add_argument("--kind", choices=("divisions", "tracks", "cells"), default=None,
                   help="labels/ctc/celegans: a sequence per division (default), per track, or one frame per cell")
    p.add_argument("--n-sequences", type=_positive, default=None, help="phantoms: how many; others: the most to keep")
    p.add_argument("--frames", type=_positive, default=None,
                   help="frames per sequence (divisions: the window; tracks and TIFFs: resampled in time)")
    p.add_argument("--size", type=_positive, default=None, help="cube side in voxels")
    p.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
                   help="voxel size in um of the source (default: its ImageJ/OME metadata)")
    p.add_argument("--axes", default=None, help="axis order of TIFF sources whose metadata are wrong, e.g. TZYX")
    p.add_argument("--align", action=argparse.BooleanOptionalAction, default=None,
                   help="turn each cell to its canonical pose (default: the profile's, on in quick)")
    p.add_argument("--daughter-shift", type=float, default=None, metavar="VOXELS",
                   help="divisions: move each daughter this many voxels from the other (default: the profile's, 2)")
    p.add_argument("--strict", action="store_true", default=None,
                   help="refuse cells cut by the field of view, volume jumps, tracks with gaps (default: warn)")
    p.add_argument("--seed", type=_non_negative, default=None)
    p.add_argument("--data-dir", default=None, help="folder holding celegans-3dmms (default $CELLNB_DATA_DIR)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing data set (whole)")
    _common(p)

    p = sub.add_parser("train", help="fit the auto-decoder to an SDF data set")
    p.add_argument("--data", required=True, help="folder of .h5 SDF files")
    p.add_argument("--run", "--run-dir", dest="run", required=True,
                   help="run directory (checkpoints, logs, metrics); under torchrun spell it --run-dir")
    p.add_argument("--epochs", type=_positive, default=None, help="override the profile's epochs")
    p.add_argument("--seed", type=_non_negative, default=None, help="override the profile's seed")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--resume", action="store_true", help="continue from the run's latest checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start over, replacing the trained model when done")
    _common(p)

    p = sub.add_parser("reconstruct", help="decode the learned codes and score them against the training data")
    p.add_argument("--run", required=True)
    p.add_argument("--size", type=_positive, default=None, help="grid side (default: the training size)")
    p.add_argument("--frames", type=_positive, default=None, help="frame count (default: the training count)")
    p.add_argument("--device", default=None)
    _common(p, profile=False, overrides=False)

    p = sub.add_parser("fit", help="codes for sequences the model never saw (decoder frozen), scored and saved")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", help="trained and evaluated run (it has latent.npz)")
    which.add_argument("--pretrained", default=None, metavar="NAME",
                       help="a model shipped with cellnb (`cellnb models` lists them); needs --out")
    p.add_argument("--data", required=True, help="folder of .h5 SDF files (cellnb prepare), e.g. RUN/data/heldout")
    p.add_argument("--out", default=None, help="output folder (default RUN/fitted/<data folder name>)")
    p.add_argument("--iterations", type=_positive, default=None, help="optimisation steps per code (default 300)")
    p.add_argument("--seed", type=_non_negative, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--overwrite", action="store_true")
    _common(p, profile=False, overrides=False)

    p = sub.add_parser("generate", help="new time-evolving shapes from latent codes")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--run", "--run-dir", dest="run", help="trained run (under torchrun: --run-dir)")
    which.add_argument("--pretrained", default=None, metavar="NAME",
                       help="a model shipped with cellnb (`cellnb models` lists them); needs --out")
    p.add_argument("--n", type=_positive, default=None, help="number of sequences")
    p.add_argument("--strategy", default=None,
                   help="recommended (the run's evaluation's choice)|random|gaussian|gmm|kde|perturb|interpolate")
    p.add_argument("--frames", type=_positive, default=None)
    p.add_argument("--size", type=_positive, default=None)
    p.add_argument("--seed", type=_non_negative, default=None)
    p.add_argument("--scale", type=float, default=None, help="temperature of the latent model (default 1)")
    p.add_argument("--format", dest="formats", action="append", default=None,
                   help="h5|tiff|mesh|gif|mp4|ctc; repeat for several")
    p.add_argument("--from-codes", default=None, metavar="FILE.npz",
                   help="start from these codes (cellnb fit's codes.npz): --n sequences from each, by --strategy "
                        "perturb or interpolate")
    p.add_argument("--towards", default=None, metavar="NAME",
                   help="with --from-codes and interpolate: the training sequence to go to (default the nearest)")
    p.add_argument("--cells-per-field", type=_positive, default=None,
                   help="generated cells placed in one field of a ctc export")
    p.add_argument("--method", default=None, choices=("narrow", "dense"))
    p.add_argument("--plausible", action=argparse.BooleanOptionalAction, default=None,
                   help="redraw codes whose cells break the family's topology (a division merging back, a part "
                        "breaking off); default: as the recommended set was made")
    p.add_argument("--redraws", type=_non_negative, default=None, metavar="K",
                   help="with --plausible: at most K extra codes drawn per sequence (default 8)")
    p.add_argument("--orientation", default=None, choices=("canonical", "training", "uniform"),
                   help="pose of the new cells: as decoded (default), turned like a random training cell, "
                        "or uniformly at random")
    p.add_argument("--out", default=None, help="output folder (default RUN/generated/STRATEGY)")
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--device", default=None)
    _common(p)

    sub.add_parser("models", help="the pretrained models shipped with cellnb, one line each")

    p = sub.add_parser("describe", help="per-frame shape descriptors of masks or SDFs, as CSV")
    p.add_argument("input", help="folder of TIFF frames, multi-frame TIFF, .h5 SDF, or a folder of these")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
                   help="voxel size for masks that lack it (default 1 1 1)")
    p.add_argument("--overwrite", action="store_true")
    _common(p, profile=False, overrides=False)

    p = sub.add_parser("microscopy", help="render label sequences into a synthetic microscopy data set (CTC layout)")
    p.add_argument("--from", dest="source", required=True,
                   help="generated .h5 sequences (e.g. RUN/generated/gaussian) or a CTC folder")
    p.add_argument("--out", required=True, help="output data set folder (01/, 01_GT/SEG, 01_GT/TRA)")
    p.add_argument("--preset", default="confocal", help="confocal|widefield|lightsheet|fluo-n3dh-ce")
    p.add_argument("--snr", type=float, default=None, help="signal-to-noise ratio, CTC definition (default: the preset's)")
    p.add_argument("--spacing", type=float, nargs=3, default=None, metavar=("DZ", "DY", "DX"),
                   help="voxel size of the images in um (default: from the masks and the preset)")
    p.add_argument("--seed", type=_non_negative, default=0)
    p.add_argument("--overwrite", action="store_true")
    _common(p, profile=False, overrides=False)

    p = sub.add_parser("run", help="the main job: every notebook for every data set, figures regenerated")
    p.add_argument("--runs", default="runs", help="parent folder of the run directories")
    p.add_argument("--figures", default="figures", help="where the figures go")
    p.add_argument("--datasets", nargs="+", default=None, help="subset of: celegans dividing filopodial celegans-cells")
    p.add_argument("--jobs", type=_positive, default=None,
                   help="data sets run at once, each in a process of its own (default: one per CPU core; 1 on one GPU)")
    p.add_argument("--readme", default="README.md", help="README whose results section is regenerated ('' to skip)")
    p.add_argument("--data-dir", default=None, help="folder holding celegans-3dmms (default $CELLNB_DATA_DIR)")
    p.add_argument("--overwrite", action="store_true", help="redo existing run directories")
    _common(p)
    return parser


def _profile(args, *, default: str = "quick"):
    from cellnb.profile import load_profile

    return load_profile(args.profile or default, args.set)


def _given(args, **names) -> dict:
    """The options the user gave, as config fields: ``{field: value}`` for those not None."""
    return {field: getattr(args, option) for field, option in names.items() if getattr(args, option) is not None}


def _prepare(args) -> str:
    from cellnb.prepare import prepare

    given = _given(args, n_sequences="n_sequences", frames="frames", size="size", seed="seed", kind="kind",
                   spacing="spacing", axes="axes", align="align", daughter_shift="daughter_shift",
                   strict="strict")
    config = _profile(args).data.replace(**given)
    s = prepare(args.source, args.out, config, data_dir=args.data_dir, overwrite=args.overwrite,
                progress=not args.quiet)
    return (f"prepared {s['n_sequences']} sequences ({s['n_train']} for training, {s['n_heldout']} held out) from "
            f"{args.source} into {args.out}: {config.size}^3, {s['frames']} frames"
            + (f"; {len(s['warnings'])} warning(s) above" if s["warnings"] else ""))


def _train(args) -> str:
    from cellnb.train import train
    from cellnb.workspace import RunDir

    profile = _profile(args)
    config = profile.train.replace(**_given(args, epochs="epochs", seed="seed"))
    summary = train(args.data, args.run, model_config=profile.model, train_config=config, device=args.device,
                    resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    RunDir(args.run).update_config("profile", profile.name)
    return f"trained {summary['epochs']} epochs in {summary['seconds']:.0f} s; checkpoint in {args.run}/checkpoints"


def _reconstruct(args) -> str:
    from cellnb.reconstruct import reconstruct

    m = reconstruct(args.run, size=args.size, frames=args.frames, device=args.device, progress=not args.quiet)
    if "dice_mean" in m:
        return f"mean Dice {m['dice_mean']:.3f}, mean IoU {m['iou_mean']:.3f} over {m['n_sequences']} sequences"
    return f"reconstructed {m['n_sequences']} sequences"


def _generate(args) -> str:
    from cellnb.generate import generate
    from cellnb.workspace import RunDir

    if args.pretrained is not None:
        from cellnb.pretrained import pretrained_run

        if args.out is None:
            raise ValueError("--pretrained needs --out DIR (where the sequences go)")
        run = pretrained_run(args.pretrained)
    else:
        run = RunDir(args.run)
    run.require_checkpoint()
    config = _profile(args, default=run.read_config().get("profile", "quick")).generate
    given = _given(args, n="n", strategy="strategy", frames="frames", size="size", seed="seed", scale="scale",
                   method="method", formats="formats", cells_per_field="cells_per_field",
                   orientation="orientation", plausible="plausible", redraws="redraws")
    s = generate(run, config.replace(**given), out=args.out, overwrite=args.overwrite, from_codes=args.from_codes,
                 towards=args.towards, device=args.device, progress=not args.quiet)
    return f"generated {s['n']} sequences ({s['strategy']}) into {s['out']} in {s['seconds']:.1f} s"


def _fit(args) -> str:
    from cellnb.fit import fit_run
    from cellnb.reconstruct import FIT_ITERATIONS

    run = args.run
    if args.pretrained is not None:
        from cellnb.pretrained import pretrained_run

        if args.out is None:
            raise ValueError("--pretrained needs --out DIR (where the codes go)")
        run = pretrained_run(args.pretrained)
    s = fit_run(run, args.data, out=args.out, iterations=args.iterations or FIT_ITERATIONS, seed=args.seed,
                device=args.device, overwrite=args.overwrite, progress=not args.quiet)
    lines = [f"{'sequence':<24} {'Dice':>6} {'topology':>8} {'log-lik':>9}  nearest training code (distance)"]
    for r in s["sequences"]:
        lines.append(f"{r['name']:<24} {r['dice']:6.3f} {'same' if r['topology_match'] else 'differs':>8} "
                     f"{r['log_likelihood']:9.2f}  {r['nearest']} ({r['nearest_distance']:.3g})")
    lines.append(f"fitted {s['n']} codes in {s['seconds']:.1f} s into {s['out']}: mean Dice {s['dice_mean']:.3f}; "
                 f"training codes: median log-likelihood {s['train_log_likelihood_median']:.2f} under "
                 f"{s['latent_model']['source']}, median nearest-neighbour distance {s['train_nearest_median']:.3g}")
    return "\n".join(lines)


def _models(args) -> str:
    from cellnb.pretrained import EMPTY, available, card_line, read_card

    names = available()
    return "\n".join(card_line(read_card(n)) for n in names) if names else EMPTY


def _describe(args) -> str:
    from cellnb.descriptors import describe_path
    from cellnb.io import atomic_path, check_writable_file

    check_writable_file(args.out, overwrite=args.overwrite)
    table = describe_path(args.input, spacing=args.spacing, progress=not args.quiet)
    with atomic_path(args.out, overwrite=args.overwrite) as tmp:
        table.to_csv(tmp, index=False)
    return f"described {table['sequence'].nunique()} sequences, {len(table)} frames -> {args.out}"


def _microscopy(args) -> str:
    from cellnb.microscopy import render_folder

    s = render_folder(args.source, args.out, snr=args.snr, spacing=args.spacing, seed=args.seed, preset=args.preset,
                      overwrite=args.overwrite)
    return f"rendered {s['shape'][0]} frames of {tuple(s['shape'][1:])} into {s['out']}: SNR {s['snr']:.2f}, CR {s['cr']:.2f}"


def _run(args) -> str:
    from cellnb.runner import run_all

    summary = run_all(
        profile=args.profile or "quick", runs=args.runs, figures=args.figures, datasets=args.datasets,
        overrides=args.set, readme=args.readme or None, overwrite=args.overwrite, data_dir=args.data_dir,
        progress=not args.quiet, jobs=args.jobs,
    )
    message = f"ran {', '.join(summary['datasets'])}; figures in {args.figures}, runs in {args.runs}"
    skipped = "; ".join(f"skipped {name} ({why})" for name, why in summary["skipped"].items())
    return f"{message}; {skipped}" if skipped else message


_HANDLERS = {
    "prepare": _prepare,
    "train": _train,
    "reconstruct": _reconstruct,
    "fit": _fit,
    "generate": _generate,
    "models": _models,
    "describe": _describe,
    "microscopy": _microscopy,
    "run": _run,
}


def _os_error(err: OSError) -> str:
    where = f" {err.filename}" if err.filename else ""
    if err.errno == errno.ENOSPC:
        return f"no space left on the device of{where}; free some disk space or write elsewhere"
    if isinstance(err, PermissionError) or err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write{where} ({err.strerror}); choose a folder you can write to"
    return f"{err.strerror or err}{':' + where if where else ''}"


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from cellnb.workspace import RunInUse

    prefix = f"cellnb {args.command}"
    try:
        with handled():
            message = _HANDLERS[args.command](args)
    except Interrupted as err:
        print(f"{prefix}: {err.message}", file=sys.stderr)
        return EXIT_SIGTERM if isinstance(err.__context__, Terminated) else EXIT_SIGINT
    except KeyboardInterrupt as err:
        print(f"{prefix}: interrupted; nothing was written", file=sys.stderr)
        return EXIT_SIGTERM if isinstance(err, Terminated) else EXIT_SIGINT
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, NotADirectoryError, RunInUse) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{prefix}: error: {text}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as err:
        print(f"{prefix}: error: {_os_error(err)}", file=sys.stderr)
        return EXIT_USAGE
    if message:
        print(message)
    return 0
