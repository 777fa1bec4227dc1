"""Training and evaluation speed of cellnb against a reference loop that trains the way the official code does.

The reference loop does, step for step, what the official implementation's
``autodecoder/train.py`` with its ``lib/data.py`` and ``lib/models/decoder_siren.py``
does (MIAGroupUT/IMPLICIT-CELL-SURFACES, as read for this benchmark; this is an
independent rewrite, not its code):

* every frame's points are drawn once, when the data set is built: a fraction
  ``SampleFraction`` of the frame's voxels, 70% of them (with replacement)
  where the normalised SDF is ``<= 0.1``, the rest where it is larger (all the
  inner voxels, without replacement, when there are fewer than 70%);
* a torch ``DataLoader`` over frames, ``ScenesPerBatch = 1`` frame per step,
  ``shuffle=True``, ``DataLoaderThreads`` worker processes (4 in its
  experiment specs);
* per step: the coordinates rotated by a learned rotation (three Euler angles,
  ``XYZ``, initialised ``N(0, 0.01^2)``, its own Adam group), the time
  appended per point, the code looked up *per point* and concatenated with the
  coordinates in the per-point call ``decoder(codes, xyzt)`` (cellnb's
  :meth:`cellnb.model.Decoder.forward`, the official layer layout), the L1 loss
  summed and divided by the point count, plus ``1e-4 * min(1, epoch / 100)``
  times the summed code norms over the point count, two ``.item()`` calls;
* Adam with the official learning rates and step schedules (1e-4 decoder,
  1e-3 codes and angles, halved every 150 epochs).

cellnb's loop is :class:`cellnb.train.Trainer` (what ``cellnb train`` runs,
minus checkpoints) with a profile's settings.  Measurements, each in one
process, alternating between the loops in paired rounds because the machine
may be shared (ratios are what to read):

1. ``throughput``: training points per second, on the quick and the paper
   decoder.  The reference uses the official settings above; cellnb uses the
   quick profile (quick decoder) or the paper profile with the reference's
   points per frame (paper decoder).
2. ``runs``: whole runs of ``--epochs`` epochs from scratch (set-up,
   ``torch.compile`` where the run is long enough for it, every epoch), the
   way the official code's loop was timed on this machine.
3. ``dense``: forward points per second of the paper decoder on chunks of
   2^17 points, ``forward_grouped`` against the per-point ``forward``.
4. ``dice``: training seconds (evaluation not counted) until the mean Dice
   of the reconstructed masks reaches 0.90 on the quick profile's data set
   (phantoms:dividing with the profile's data settings): cellnb's quick profile against the reference with the
   official settings (paper decoder, ``SampleFraction`` 0.06 as in its specs).

``--compare-tree`` adds to the whole runs the paper profile's eager loop of
another cellnb checkout, timed in the same alternating rounds.  Issue 14
timed the official loop at 40.3k points/s and cellnb's eager paper-profile
loop of its day at 33.7k on this set, a ratio of 1.196; the reference's
ratio to that checkout, timed together, checks it against the official
code's number independently of how busy the machine is.

Throughput and whole runs use the set the official loop was timed on here
(issue 14: 4 dividing phantoms x 8 frames x 32^3, 30% of the voxels = 9,830
points per frame).

Usage::

    python benchmarks/train_throughput.py                       # all parts, ~30 min on 2 shared cores
    python benchmarks/train_throughput.py --parts throughput dense
    python benchmarks/train_throughput.py --parts runs --sequences 3 --frames 6   # the NOTES tiny set
    python benchmarks/train_throughput.py --rss --rss-size 256 --rss-frames 30 --rss-sequences 33

``--rss`` instead measures the peak resident memory of building the training
points of a large data set from files on disk, and prints the memory model of
a paper-scale run (:func:`cellnb.train.training_memory`).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from cellnb.field import evaluate_narrow_band
from cellnb.model import PAPER, Decoder, DecoderConfig
from cellnb.prepare import prepare
from cellnb.profile import load_profile
from cellnb.sampling import FramePoints, SDFDataset
from cellnb.sdf import dice, grid_axes
from cellnb.train import Trainer, training_memory

log = logging.getLogger("train_throughput")

TARGET_DICE = 0.90
PARTS = ("throughput", "runs", "dense", "dice")
DENSE_CHUNK = 2**17  # points per call, cellnb.field.DEFAULT_CHUNK_POINTS

# The official settings (its experiment specs and train.py, MIAGroupUT/IMPLICIT-CELL-SURFACES autodecoder/)
OFFICIAL_NEAR, OFFICIAL_NEAR_SHARE = 0.1, 0.7  # inner points: SDF <= 0.1, 70% of a frame's samples
OFFICIAL_LR = (1e-4, 1e-3, 1e-3)  # decoder, codes, rotation angles
OFFICIAL_LR_INTERVAL, OFFICIAL_LR_FACTOR = 150, 0.5
OFFICIAL_CODE_REG, OFFICIAL_CODE_REG_RAMP = 1e-4, 100  # lambda, epochs of its linear ramp
OFFICIAL_ANGLE_STD = 0.01
OFFICIAL_WORKERS = 4  # DataLoaderThreads


class OfficialFrames(torch.utils.data.Dataset):
    """The official in-memory frame set: each frame's samples ``(x, y, z, sdf)`` drawn once, at construction."""

    def __init__(self, dataset: SDFDataset, fraction: float, seed: int):
        generator = torch.Generator().manual_seed(seed)
        axes = grid_axes(dataset.shape)
        coords = torch.from_numpy(np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3))
        self.items = []
        for f in range(dataset.n_total_frames):
            sdf = torch.from_numpy(dataset.frame(f).ravel())
            samples = torch.cat([coords, sdf[:, None]], dim=1)
            size = int(len(sdf) * fraction)
            inner = torch.nonzero(sdf <= OFFICIAL_NEAR)[:, 0]
            outer = torch.nonzero(sdf > OFFICIAL_NEAR)[:, 0]
            n_inner = int(size * OFFICIAL_NEAR_SHARE)
            if len(inner) < n_inner:
                picked = inner
            else:
                picked = inner[torch.randint(0, len(inner), (n_inner,), generator=generator)]
            rest = outer[torch.randint(0, len(outer), (size - len(picked),), generator=generator)]
            s, t = divmod(f, dataset.n_frames)
            self.items.append((samples[torch.cat([picked, rest])], float(dataset.times[t]), s))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]

    @property
    def points_per_frame(self) -> int:
        return len(self.items[0][0])


def euler_xyz(angles: torch.Tensor) -> torch.Tensor:
    """Rotation matrix ``R_x(a) R_y(b) R_z(c)`` of Euler angles ``(a, b, c)`` (the ``XYZ`` convention)."""
    cos, sin = torch.cos(angles), torch.sin(angles)
    one, zero = torch.ones_like(angles[0]), torch.zeros_like(angles[0])

    def rot(axis):
        c, s = cos[axis], sin[axis]
        rows = {0: [[one, zero, zero], [zero, c, -s], [zero, s, c]],
                1: [[c, zero, s], [zero, one, zero], [-s, zero, c]],
                2: [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
        return torch.stack([torch.stack(r) for r in rows])

    return rot(0) @ rot(1) @ rot(2)


class Rotated(nn.Module):
    """A decoder evaluated on coordinates rotated as in training (``xyz @ R^T``), for :mod:`cellnb.field`."""

    def __init__(self, decoder: Decoder, angles: torch.Tensor):
        super().__init__()
        self.decoder, self.config = decoder, decoder.config
        self.register_buffer("rotation", euler_xyz(angles.detach()).T.contiguous())

    def forward_grouped(self, codes, xyzt):
        return self.decoder.forward_grouped(codes, torch.cat([xyzt[..., :3] @ self.rotation, xyzt[..., 3:]], -1))


class ReferenceLoop:
    """The official training loop, step for step (module docstring)."""

    def __init__(self, dataset: SDFDataset, model_config: DecoderConfig, *, fraction: float, workers: int,
                 seed: int = 0):
        torch.manual_seed(seed)
        self.decoder = Decoder(model_config)
        self.lat_vecs = nn.Embedding(dataset.n_sequences, model_config.code_length)
        nn.init.normal_(self.lat_vecs.weight, 0.0, 1.0 / math.sqrt(model_config.code_length))
        self.rot_ang = nn.Embedding(1, 3)
        nn.init.normal_(self.rot_ang.weight, 0.0, OFFICIAL_ANGLE_STD)
        self.optimizer = torch.optim.Adam([{"params": m.parameters(), "lr": lr} for m, lr in
                                           zip((self.decoder, self.lat_vecs, self.rot_ang), OFFICIAL_LR)])
        self.frames = OfficialFrames(dataset, fraction, seed)
        self.loader = torch.utils.data.DataLoader(self.frames, batch_size=1, shuffle=True, num_workers=workers,
                                                  drop_last=False, generator=torch.Generator().manual_seed(seed))
        self.epoch, self.loss_log, self.running_loss = 0, [], 0.0

    def run_epoch(self) -> int:
        epoch = self.epoch + 1  # the official epochs count from 1
        for group, lr in zip(self.optimizer.param_groups, OFFICIAL_LR):
            group["lr"] = lr * OFFICIAL_LR_FACTOR ** (epoch // OFFICIAL_LR_INTERVAL)
        self.decoder.train()
        n_points = 0
        for sdf_data, times, sequence_ids in self.loader:
            self.optimizer.zero_grad()
            per_frame = sdf_data.shape[1]
            sdf_data = sdf_data.reshape(-1, 4)
            n = sdf_data.shape[0]
            xyz = sdf_data[:, :3] @ euler_xyz(self.rot_ang(torch.tensor(0))).T
            xyzt = torch.cat([xyz, times.float().unsqueeze(-1).repeat(1, per_frame).view(-1, 1)], dim=1)
            sdf_gt = sdf_data[:, 3].unsqueeze(1)
            codes = self.lat_vecs(sequence_ids.unsqueeze(-1).repeat(1, per_frame).view(-1))
            pred = self.decoder(codes, xyzt)
            loss = nn.functional.l1_loss(pred, sdf_gt, reduction="sum") / n
            ramp = min(1.0, epoch / OFFICIAL_CODE_REG_RAMP)
            loss = loss + OFFICIAL_CODE_REG * ramp * torch.sum(torch.norm(codes, dim=1)) / n
            loss.backward()
            self.loss_log.append(loss.item())  # the official loop reads the loss twice per step
            self.running_loss += loss.item()
            self.optimizer.step()
            n_points += n
        self.epoch += 1
        return n_points

    def evaluated(self):
        """The decoder (rotating its input as in training) and the codes, for evaluation."""
        return Rotated(self.decoder, self.rot_ang.weight[0]).eval(), self.lat_vecs.weight.detach()


class CellnbLoop:
    """cellnb's loop: :class:`cellnb.train.Trainer` with a profile's settings."""

    def __init__(self, dataset, model_config, tc):
        self.trainer = Trainer(dataset, model_config, tc)
        self.epoch = 0

    def run_epoch(self) -> int:
        row = self.trainer.run_epoch(self.epoch)
        self.epoch += 1
        return row["points"]

    def evaluated(self):
        return self.trainer.module.decoder.eval(), self.trainer.module.codes.weight.detach()


def mean_dice(loop, dataset, truth) -> float:
    """Mean Dice of the reconstructed masks (narrow band: the same masks as dense, in less time)."""
    decoder, codes = loop.evaluated()
    with torch.no_grad():
        scores = [dice(evaluate_narrow_band(decoder, codes[s], shape=dataset.shape, times=dataset.times)[0] < 0,
                       truth[s]) for s in range(dataset.n_sequences)]
    decoder.train()
    return float(np.mean(scores))


def with_threads(threads, fn, *args):
    """``fn(*args)`` with torch set to ``threads`` threads (None: as it is)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        torch.set_num_threads(before)


def throughput(loops: dict, threads: dict, seconds: float, rounds: int) -> dict:
    """Points per second of each loop: alternating timed rounds of whole epochs, after one untimed epoch each."""
    for name, loop in loops.items():
        t0 = time.perf_counter()
        with_threads(threads[name], loop.run_epoch)
        log.info("  first epoch %-16s %6.1f s", name, time.perf_counter() - t0)
    rates = {name: [] for name in loops}

    def timed(loop):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += loop.run_epoch()
        return n / (time.perf_counter() - t0)

    for _ in range(rounds):
        for name, loop in loops.items():
            rates[name].append(with_threads(threads[name], timed, loop))
    return {name: float(np.median(r)) for name, r in rates.items()}


def whole_runs(makers: dict, threads: dict, epochs: int, rounds: int) -> dict:
    """Points per second of whole runs of ``epochs`` epochs from scratch (set-up included), alternating.

    A maker returns a loop, or (for another checkout, in a subprocess) the rate itself.
    """
    rates = {name: [] for name in makers}

    def run(make):
        t0 = time.perf_counter()
        loop = make()
        if isinstance(loop, float):
            return loop
        n = sum(loop.run_epoch() for _ in range(epochs))
        return n / (time.perf_counter() - t0)

    for _ in range(rounds):
        for name, make in makers.items():
            rates[name].append(with_threads(threads[name], run, make))
            log.info("  %-16s %9.0f points/s", name, rates[name][-1])
    return {name: float(np.median(r)) for name, r in rates.items()}


_OTHER_CHECKOUT_RUN = """
import json, sys, time
import torch
from dataclasses import replace
from cellnb.sampling import SDFDataset
from cellnb.train import TrainConfig, Trainer

folder, points, epochs, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
try:  # a checkout with typed profiles
    from cellnb.profile import load_profile
    paper = load_profile("paper")
    model, tc = paper.model, replace(paper.train, points_per_frame=points, epochs=epochs, compile=False)
except ImportError:  # an older checkout: profiles are dicts
    from cellnb.config import load_profile
    from cellnb.model import DecoderConfig
    paper = load_profile("paper")
    model = DecoderConfig.from_dict(paper["model"])
    tc = TrainConfig.from_dict({**paper["train"], "points_per_frame": points, "epochs": epochs, "compile": False})
if threads:
    torch.set_num_threads(threads)
t0 = time.perf_counter()
trainer = Trainer(SDFDataset(folder), model, tc)
n = sum(trainer.run_epoch(e)["points"] for e in range(epochs))
print(json.dumps(n / (time.perf_counter() - t0)))
"""


def other_checkout(tree: Path, folder: Path, points: int, epochs: int, threads):
    """A maker timing the paper profile's eager loop of the cellnb checkout ``tree`` (whole run, in a subprocess)."""
    def run() -> float:
        # run from the checkout: "python -c" puts the working directory first on sys.path
        done = subprocess.run([sys.executable, "-c", _OTHER_CHECKOUT_RUN, str(folder), str(points), str(epochs),
                               str(threads or 0)], capture_output=True, text=True, check=True, cwd=tree,
                              env={**os.environ, "PYTHONPATH": str(tree)})
        return float(json.loads(done.stdout.splitlines()[-1]))
    return run


def dense_forward(seconds: float, rounds: int, threads) -> dict:
    """Forward points per second of the paper decoder: ``forward_grouped`` vs the per-point ``forward``."""
    torch.manual_seed(0)
    decoder = Decoder(PAPER).eval()
    code = torch.randn(1, PAPER.code_length) / math.sqrt(PAPER.code_length)
    xyzt = torch.rand(1, DENSE_CHUNK, 4) * 2 - 1
    codes = code.expand(DENSE_CHUNK, -1)
    calls = {"forward_grouped": lambda: decoder.forward_grouped(code, xyzt),
             "per-point forward": lambda: decoder(codes, xyzt[0])}
    with torch.no_grad():
        diff = (calls["forward_grouped"]()[0] - calls["per-point forward"]()[:, 0]).abs().max().item()
    log.info("  max |forward_grouped - forward| = %.2e over %d points", diff, DENSE_CHUNK)
    rates = {name: [] for name in calls}

    def timed(call):
        n, t0 = 0, time.perf_counter()
        with torch.no_grad():
            while time.perf_counter() - t0 < seconds:
                call()
                n += DENSE_CHUNK
        return n / (time.perf_counter() - t0)

    for _ in range(rounds):
        for name, call in calls.items():
            rates[name].append(with_threads(threads, timed, call))
    return {name: float(np.median(r)) for name, r in rates.items()}


def time_to_dice(make_loop, threads, dataset, truth, *, cap: float, eval_every: float):
    """Training seconds until mean Dice >= 0.90 (None if not within ``cap``), last Dice, epochs."""
    loop = with_threads(threads, make_loop)
    clock, next_eval, score = 0.0, eval_every, 0.0
    while clock < cap:
        t0 = time.perf_counter()
        with_threads(threads, loop.run_epoch)
        clock += time.perf_counter() - t0
        if clock >= next_eval or clock >= cap:
            score = with_threads(threads, mean_dice, loop, dataset, truth)
            log.info("    %.0f s, epoch %d: mean Dice %.3f", clock, loop.epoch, score)
            if score >= TARGET_DICE:
                return clock, score, loop.epoch
            next_eval = clock + eval_every
    return None, score, loop.epoch


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
    tc = load_profile("paper").train
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


def log_paper_memory_model() -> None:
    """The memory model of the paper profile at the paper's scale (33 sequences x 30 frames x 256^3)."""
    paper = load_profile("paper")
    model, tc = paper.model, paper.train
    for world in (1, 4):
        m = training_memory(model, tc, n_sequences=33, n_frames=30, shape=256, world=world)
        log.info("memory model, paper profile, 33 x 30 x 256^3, %d process(es): %s", world,
                 ", ".join(f"{k} {m[k] / 2**30:.2f} GiB" for k in ("points", "data_cache", "activations",
                                                                    "parameters", "total")))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS)
    # the set the official loop was timed on here (issue 14); time to Dice uses the quick profile's data
    p.add_argument("--sequences", type=int, default=4, help="throughput and runs: phantom sequences (dividing)")
    p.add_argument("--frames", type=int, default=8, help="throughput and runs: frames per sequence")
    p.add_argument("--size", type=int, default=32, help="throughput and runs: grid side")
    p.add_argument("--sample-fraction", type=float, default=0.3,
                   help="reference: share of a frame's voxels drawn as its points (official SampleFraction; its "
                        "C. elegans specs use 0.06, the official runs measured on this machine 0.3)")
    p.add_argument("--workers", type=int, default=OFFICIAL_WORKERS, help="reference: DataLoader worker processes")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of every loop (default: cellnb its profile's, the reference torch's default)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of one timed throughput round")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per measurement")
    p.add_argument("--epochs", type=int, default=8, help="epochs of the whole runs")
    p.add_argument("--cap", type=float, default=600.0, help="time cap (training seconds) for reaching Dice 0.90")
    p.add_argument("--eval-every", type=float, default=5.0, help="dice: training seconds between cellnb's evaluations")
    p.add_argument("--compare-tree", default=None,
                   help="runs: also time the paper profile's eager loop of this cellnb checkout (e.g. the commit the "
                        "official loop was timed against) in the same alternating rounds")
    p.add_argument("--dice-sample-fraction", type=float, default=0.06,
                   help="dice: the reference's SampleFraction (0.06, the official experiment specs)")
    p.add_argument("--eval-every-reference", type=float, default=60.0,
                   help="dice: training seconds between the reference's Dice evaluations (they take long)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--rss", action="store_true", help="measure peak RSS of building the points instead")
    p.add_argument("--rss-size", type=int, default=256)
    p.add_argument("--rss-frames", type=int, default=30)
    p.add_argument("--rss-sequences", type=int, default=33)
    p.add_argument("--rss-distinct", type=int, default=2, help="distinct files written; the rest are links")
    p.add_argument("--rss-measure", default=None, help=argparse.SUPPRESS)
    p.add_argument("--tmp", default=None, help="folder for the temporary data set")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("cellnb").setLevel(logging.WARNING)
    if args.rss_measure:
        measure_points_rss(args.rss_measure)
        return
    if args.rss:
        log_paper_memory_model()
        with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
            write_large_dataset(Path(tmp), sequences=args.rss_sequences, frames=args.rss_frames, size=args.rss_size,
                                distinct=args.rss_distinct)
            # a fresh process, so the peak RSS is not the writer's
            subprocess.run([sys.executable, __file__, "--rss-measure", tmp], check=True)
        return
    quick, paper = load_profile("quick"), load_profile("paper")
    quick_model, paper_model = quick.model, paper.model
    quick_tc = quick.train
    results = {"args": vars(args)}
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        prepare("phantoms:dividing", Path(tmp) / "set", n_sequences=args.sequences, frames=args.frames,
                size=args.size, seed=0, progress=False)
        dataset = SDFDataset(Path(tmp) / "set")
        per_frame = int(np.prod(dataset.shape) * args.sample_fraction)
        # cellnb on the paper decoder: the paper profile, with the reference's points per frame
        paper_tc = replace(paper.train, points_per_frame=per_frame)
        ref_threads = args.threads
        ours = {"quick": args.threads or quick_tc.num_threads, "paper": args.threads or paper_tc.num_threads}
        log.info("data: %d dividing phantoms x %d frames x %d^3; reference: %d points per frame (fraction %.2f), "
                 "1 frame per step, %d loader workers; torch threads: reference %s, cellnb quick %s, paper %s",
                 dataset.n_sequences, dataset.n_frames, args.size, per_frame, args.sample_fraction, args.workers,
                 ref_threads or torch.get_num_threads(), ours["quick"], ours["paper"] or torch.get_num_threads())

        def reference(model_config, data=dataset, fraction=args.sample_fraction):
            return lambda: ReferenceLoop(data, model_config, fraction=fraction, workers=args.workers)

        def cellnb(model_config, tc, data=dataset):
            return lambda: CellnbLoop(data, model_config, tc)

        arch = {"quick": (quick_model, quick_tc), "paper": (paper_model, paper_tc)}
        if "throughput" in args.parts:
            for name, (model_config, tc) in arch.items():
                log.info("throughput, %s decoder (%d parameters):", name, Decoder(model_config).n_parameters())
                loops = {"cellnb": cellnb(model_config, tc)(), "reference": reference(model_config)()}
                rates = throughput(loops, {"cellnb": ours[name], "reference": ref_threads}, args.seconds, args.rounds)
                for loop, rate in rates.items():
                    log.info("  %-10s %9.0f points/s", loop, rate)
                log.info("  ratio cellnb / reference, %s decoder: %.2fx", name, rates["cellnb"] / rates["reference"])
                results[f"throughput_{name}"] = {**rates, "ratio": rates["cellnb"] / rates["reference"]}
        if "runs" in args.parts:
            log.info("whole runs of %d epochs from scratch, paper decoder:", args.epochs)
            makers = {"cellnb": cellnb(paper_model, replace(paper_tc, epochs=args.epochs)),
                      "reference": reference(paper_model)}
            threads = {"cellnb": ours["paper"], "reference": ref_threads}
            if args.compare_tree:
                other = f"cellnb@{Path(args.compare_tree).name}"
                makers[other] = other_checkout(Path(args.compare_tree).resolve(), Path(tmp) / "set", per_frame,
                                               args.epochs, args.threads or paper_tc.num_threads)
                threads[other] = None
            rates = whole_runs(makers, threads, args.epochs, args.rounds)
            for loop, rate in rates.items():
                log.info("  median %-16s %9.0f points/s", loop, rate)
            log.info("  ratio cellnb / reference, whole runs: %.2fx", rates["cellnb"] / rates["reference"])
            if args.compare_tree:
                log.info("  ratio reference / %s (eager): %.3f", other, rates["reference"] / rates[other])
            results["runs"] = {**rates, "ratio": rates["cellnb"] / rates["reference"]}
        if "dense" in args.parts:
            log.info("dense forward, paper decoder, chunks of %d points:", DENSE_CHUNK)
            rates = dense_forward(args.seconds, args.rounds, args.threads)
            for name, rate in rates.items():
                log.info("  %-18s %9.0f points/s", name, rate)
            ratio = rates["forward_grouped"] / rates["per-point forward"]
            log.info("  ratio forward_grouped / per-point forward: %.2fx", ratio)
            results["dense"] = {**rates, "ratio": ratio}
        if "dice" in args.parts:
            data = quick.data
            prepare("phantoms:dividing", Path(tmp) / "quick", n_sequences=data.n_sequences, frames=data.frames,
                    size=data.size, seed=data.seed, progress=False)
            quick_set = SDFDataset(Path(tmp) / "quick")
            truth = [quick_set.sequence(s) < 0 for s in range(quick_set.n_sequences)]
            log.info("time to mean Dice %.2f on the quick profile's data (%d x %d x %d^3): cellnb's quick profile "
                     "against the official settings", TARGET_DICE, quick_set.n_sequences, quick_set.n_frames,
                     data.size)
            reached = {}
            for name, make, threads, every in [
                ("cellnb", cellnb(quick_model, quick_tc, quick_set), ours["quick"], args.eval_every),
                ("reference", reference(paper_model, quick_set, args.dice_sample_fraction), ref_threads,
                 args.eval_every_reference),
            ]:
                log.info("  %s (cap %.0f s):", name, args.cap)
                reached[name] = time_to_dice(make, threads, quick_set, truth, cap=args.cap, eval_every=every)
            for name, (seconds, score, epochs) in reached.items():
                where = f"{seconds:.0f} s ({epochs} epochs)" if seconds is not None else f"not within {args.cap:.0f} s"
                log.info("  time to Dice %.2f %-10s %s, last Dice %.3f", TARGET_DICE, name, where, score)
            ours_s, ref_s = reached["cellnb"][0], reached["reference"][0]
            if ours_s is not None:
                bound = ">= " if ref_s is None else ""
                log.info("  ratio reference / cellnb time to Dice %.2f: %s%.2fx", TARGET_DICE, bound,
                         (ref_s if ref_s is not None else args.cap) / ours_s)
            results["dice"] = {name: {"seconds": s, "dice": d, "epochs": e} for name, (s, d, e) in reached.items()}
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
