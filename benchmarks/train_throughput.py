"""Training speed of cellnb's loop vs a plain reference loop, on the same model and data.

The reference loop is written here the way the official implementation
trains (its ``train.py`` and ``lib/data.py``): a torch ``DataLoader`` over
frames with ``shuffle=True``, points drawn for each frame as it is loaded,
and one code per *point* (``lat_vecs(ids.repeat(...))``) passed with the
coordinates to the per-point call ``decoder(codes, xyzt)``.  cellnb's loop
(:func:`cellnb.train.train`) holds pre-drawn points per frame and calls
``decoder.forward_grouped`` once per batch of frames, compiled by
``torch.compile`` as the quick profile sets it.  Both use the same
decoder config, learning rates, point rule, points per frame and frames per
batch, so only the loop differs.

Two measurements, each run in the same process, alternating, because the
machine may be shared:

1. throughput: training points per second of each loop (steps of
   ``frames_per_batch x points_per_frame`` points) and their ratio, also
   for cellnb's loop without ``torch.compile`` ("cellnb-eager");
2. time to reach a mean Dice of 0.90 on a fixed phantom set, evaluating
   every few seconds of training (evaluation time not counted), with a cap.

``--rss`` instead measures the peak resident memory of building the training
points of a large data set (``--rss-sequences x --rss-frames x
--rss-size^3``) from files on disk, to show it does not grow with the full
grid of all frames.

Usage::

    python benchmarks/train_throughput.py            # a few minutes on 2 cores
    python benchmarks/train_throughput.py --rss --rss-size 256 --rss-frames 30 --rss-sequences 33
"""

from __future__ import annotations

import argparse
import logging
import math
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cellnb.config import load_profile
from cellnb.field import evaluate_dense
from cellnb.model import Decoder, DecoderConfig
from cellnb.prepare import prepare
from cellnb.sampling import FramePoints, SDFDataset, sample_frame
from cellnb.sdf import dice
from cellnb.train import TrainConfig, Trainer, learning_rates

log = logging.getLogger("train_throughput")

TARGET_DICE = 0.90


class ReferenceFrames(torch.utils.data.Dataset):
    """Official-style frame dataset: each item draws its points when loaded."""

    def __init__(self, dataset: SDFDataset, tc: TrainConfig, seed: int):
        self.dataset, self.tc, self.seed = dataset, tc, seed
        self.frames = [dataset.frame(f) for f in range(dataset.n_total_frames)]
        self.calls = 0

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, f):
        self.calls += 1
        coords, values = sample_frame(self.frames[f], self.tc.points_per_frame, near_fraction=self.tc.near_fraction,
                                      threshold=self.tc.threshold, mode=self.tc.sampling_mode,
                                      rng=(self.seed, self.calls, f))
        samples = torch.from_numpy(np.concatenate([coords, values[:, None]], axis=1))
        t = float(self.dataset.times[f % self.dataset.n_frames])
        return samples, t, f // self.dataset.n_frames


class ReferenceLoop:
    """The plain loop: DataLoader of frames, per-point codes, ``decoder(codes, xyzt)``."""

    def __init__(self, dataset, model_config, tc, seed=0):
        torch.manual_seed(seed)
        self.tc = tc
        self.decoder = Decoder(model_config)
        self.lat_vecs = torch.nn.Embedding(dataset.n_sequences, model_config.code_length)
        torch.nn.init.normal_(self.lat_vecs.weight, 0.0, tc.code_init_std / math.sqrt(model_config.code_length))
        self.opt = torch.optim.Adam([{"params": self.decoder.parameters(), "lr": tc.lr_decoder},
                                     {"params": self.lat_vecs.parameters(), "lr": tc.lr_codes}])
        self.loader = torch.utils.data.DataLoader(ReferenceFrames(dataset, tc, seed), batch_size=tc.frames_per_batch,
                                                  shuffle=True, drop_last=True, num_workers=0,
                                                  generator=torch.Generator().manual_seed(seed))
        self.epoch = 0

    def run_epoch(self) -> int:
        lr_dec, lr_codes = learning_rates(self.tc, self.epoch)
        self.opt.param_groups[0]["lr"], self.opt.param_groups[1]["lr"] = lr_dec, lr_codes
        reg_w = self.tc.code_reg * min(1.0, (self.epoch + 1) / max(self.tc.code_reg_warmup_epochs, 1))
        n_points = 0
        for sdf_data, times, ids in self.loader:
            n_per_frame = sdf_data.shape[1]
            n = sdf_data.shape[0] * n_per_frame
            xyz = sdf_data[:, :, :3].reshape(-1, 3)
            sdf_gt = sdf_data[:, :, 3].reshape(-1, 1)
            xyzt = torch.cat([xyz, times.float().unsqueeze(-1).repeat(1, n_per_frame).view(-1, 1)], dim=1)
            codes = self.lat_vecs(ids.unsqueeze(-1).repeat(1, n_per_frame).view(-1))
            pred = self.decoder(codes, xyzt)
            loss = torch.nn.functional.l1_loss(pred, sdf_gt, reduction="sum") / n
            loss = loss + reg_w * torch.sum(torch.norm(codes, dim=1)) / n
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            n_points += n
        self.epoch += 1
        return n_points

    def codes(self):
        return self.decoder.eval(), self.lat_vecs.weight.detach()


class OurLoop:
    """cellnb's loop: :class:`cellnb.train.Trainer` (what :func:`cellnb.train.train` runs, minus checkpoints)."""

    def __init__(self, dataset, model_config, tc, seed=0):
        self.trainer = Trainer(dataset, model_config, replace(tc, seed=seed))
        self.epoch = 0

    def run_epoch(self) -> int:
        row = self.trainer.run_epoch(self.epoch)
        self.epoch += 1
        return row["points"]

    def codes(self):
        return self.trainer.module.decoder.eval(), self.trainer.module.codes.weight.detach()


def mean_dice(loop, dataset, truth) -> float:
    decoder, codes = loop.codes()
    scores = []
    with torch.no_grad():
        for s in range(dataset.n_sequences):
            rec = evaluate_dense(decoder, codes[s], shape=dataset.shape, times=dataset.times) < 0
            scores.append(dice(rec, truth[s]))
    decoder.train()
    return float(np.mean(scores))


def throughput(loops: dict, seconds: float, rounds: int) -> dict:
    """Points per second of each loop: alternating timed rounds of whole epochs, after one untimed epoch each."""
    for name, loop in loops.items():
        t0 = time.perf_counter()
        loop.run_epoch()
        log.info("first epoch %-12s %6.1f s (with torch.compile's compilation where on)", name,
                 time.perf_counter() - t0)
    rates = {name: [] for name in loops}
    for _ in range(rounds):
        for name, loop in loops.items():
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                n += loop.run_epoch()
            rates[name].append(n / (time.perf_counter() - t0))
    return {name: float(np.median(r)) for name, r in rates.items()}


def time_to_dice(make_loop, dataset, truth, *, cap: float, eval_every: float) -> tuple[float | None, float, int]:
    """Training seconds until mean Dice >= 0.90 (None if not within ``cap``), last Dice, epochs."""
    loop = make_loop()
    clock, next_eval, dice = 0.0, eval_every, 0.0
    while clock < cap:
        t0 = time.perf_counter()
        loop.run_epoch()
        clock += time.perf_counter() - t0
        if clock >= next_eval or clock >= cap:
            dice = mean_dice(loop, dataset, truth)
            log.info("  %.0f s, epoch %d: mean Dice %.3f", clock, loop.epoch, dice)
            if dice >= TARGET_DICE:
                return clock, dice, loop.epoch
            next_eval = clock + eval_every
    return None, dice, loop.epoch


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_large_dataset(folder: Path, *, sequences: int, frames: int, size: int, distinct: int) -> None:
    """``distinct`` SDF files (a moving sphere, computed analytically) linked as ``sequences`` sequences.

    Reading a linked file costs what reading a distinct one does; writing
    only a few keeps the set-up short.
    """
    from cellnb.io import write_sdf_h5

    axis = np.linspace(-1, 1, size, dtype=np.float32)
    r2 = axis[:, None, None] ** 2 + axis[None, :, None] ** 2
    for i in range(distinct):
        sdf = np.empty((frames, size, size, size), np.float32)
        for t in range(frames):
            sdf[t] = np.sqrt(r2 + (axis[None, None, :] - 0.2 * t / frames) ** 2) - 0.3 - 0.01 * i
        write_sdf_h5(folder / f"distinct{i:02d}.h5", sdf / np.abs(sdf).max())
        del sdf
    for i in range(distinct, sequences):
        (folder / f"linked{i:02d}.h5").symlink_to(folder / f"distinct{i % distinct:02d}.h5")


def measure_points_rss(folder) -> None:
    """Peak RSS of this process while drawing the paper profile's training points of ``folder``."""
    tc = TrainConfig.from_dict(load_profile("paper")["train"])
    base = peak_rss_mb()
    dataset = SDFDataset(folder)
    t0 = time.perf_counter()
    points = FramePoints(dataset, points_per_frame=tc.points_per_frame, near_fraction=tc.near_fraction,
                         threshold=tc.threshold, mode=tc.sampling_mode, cache_bytes=tc.cache_mb << 20)
    points.resample(0, progress=True)
    seconds = time.perf_counter() - t0
    log.info("data set: %d sequences x %d frames x %s = %.1f GB as float32 (frames %s in memory)",
             dataset.n_sequences, dataset.n_frames, dataset.shape, dataset.nbytes / 1e9,
             "kept" if points.cached else "not kept")
    log.info("points: %d per frame (paper profile), %.0f MB held; drawn in %.0f s", tc.points_per_frame,
             points.nbytes / 1e6, seconds)
    log.info("peak RSS: %.0f MB before drawing the points, %.0f MB after", base, peak_rss_mb())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sequences", type=int, default=2, help="phantom sequences (dividing family)")
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--seconds", type=float, default=8.0, help="length of one timed throughput round")
    p.add_argument("--rounds", type=int, default=3, help="alternating throughput rounds per loop")
    p.add_argument("--cap", type=float, default=90.0, help="time cap (training seconds) for reaching Dice 0.90")
    p.add_argument("--eval-every", type=float, default=3.0, help="training seconds between Dice evaluations")
    p.add_argument("--model", default="quick", choices=("quick", "paper"),
                   help="decoder: the quick or the paper profile's (training settings: quick)")
    p.add_argument("--no-dice", action="store_true", help="throughput only")
    p.add_argument("--rss", action="store_true", help="measure peak RSS of building the points instead")
    p.add_argument("--rss-size", type=int, default=256)
    p.add_argument("--rss-frames", type=int, default=30)
    p.add_argument("--rss-sequences", type=int, default=33)
    p.add_argument("--rss-distinct", type=int, default=2, help="distinct files written; the rest are links")
    p.add_argument("--rss-measure", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None, help="folder for the temporary data set")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.rss_measure:
        measure_points_rss(args.rss_measure)
        return
    if args.rss:
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            write_large_dataset(Path(tmp), sequences=args.rss_sequences, frames=args.rss_frames, size=args.rss_size,
                                distinct=args.rss_distinct)
            # a fresh process, so the peak RSS is not the writer's
            subprocess.run([sys.executable, __file__, "--rss-measure", tmp], check=True)
        return
    profile = load_profile("quick")
    model_config = DecoderConfig.from_dict(load_profile(args.model)["model"])
    tc = TrainConfig.from_dict({**profile["train"], "epochs": 10_000})  # schedules stay at their initial rates
    if tc.num_threads is not None:
        torch.set_num_threads(tc.num_threads)  # both loops run with the profile's thread count
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        prepare("phantoms:dividing", tmp, n_sequences=args.sequences, frames=args.frames, size=args.size, seed=0,
                progress=False)
        dataset = SDFDataset(tmp)
        truth = [dataset.sequence(s) < 0 for s in range(dataset.n_sequences)]
        log.info("data: %d dividing phantoms x %d frames x %d^3; model: %d parameters; batch: %d frames x %d points; "
                 "%d threads", dataset.n_sequences, dataset.n_frames, args.size, Decoder(model_config).n_parameters(),
                 tc.frames_per_batch, tc.points_per_frame, torch.get_num_threads())
        makers = {"cellnb": lambda: OurLoop(dataset, model_config, tc),
                  "reference": lambda: ReferenceLoop(dataset, model_config, tc)}
        eager = replace(tc, compile=False)
        loops = {name: make() for name, make in makers.items()}
        loops["cellnb-eager"] = OurLoop(dataset, model_config, eager)  # what the loop gains without torch.compile
        rates = throughput(loops, args.seconds, args.rounds)
        for name, rate in rates.items():
            log.info("throughput %-12s %8.0f points/s", name, rate)
        for name in ("cellnb", "cellnb-eager"):
            log.info("throughput ratio %s / reference: %.2fx", name, rates[name] / rates["reference"])
        if args.no_dice:
            return
        reached = {}
        for name, make in makers.items():
            log.info("time to mean Dice %.2f, %s loop (cap %.0f s):", TARGET_DICE, name, args.cap)
            reached[name] = time_to_dice(make, dataset, truth, cap=args.cap, eval_every=args.eval_every)
        for name, (seconds, dice, epochs) in reached.items():
            where = f"{seconds:.0f} s ({epochs} epochs)" if seconds is not None else f"not within {args.cap:.0f} s"
            log.info("time to Dice %.2f %-9s %s, last Dice %.3f", TARGET_DICE, name, where, dice)
        if reached["cellnb"][0] is not None and reached["reference"][0] is not None:
            log.info("time-to-Dice ratio reference / cellnb: %.2fx", reached["reference"][0] / reached["cellnb"][0])


if __name__ == "__main__":
    main()
