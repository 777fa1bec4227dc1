"""The decoder: a SIREN MLP f(code, c0, c1, c2, t) -> SDF, in the official layout.

Architecture (Wiesner et al. 2022, Sec. 2, after DeepSDF's decoder with sine
activations): the input is ``cat(code, xyzt)``.  A layer listed in
``latent_in`` receives ``cat(h, input)``; with ``xyz_in_all`` every other layer
after the first receives ``cat(h, xyzt)``.  Hence the layer before a
``latent_in`` layer outputs ``dims[l+1] - dims[0]`` units and, with
``xyz_in_all``, every other layer but the last outputs ``dims[l+1] - 4``.
Every layer but the last is followed by ``sin(omega * .)``; the output is
optionally passed through ``tanh``.
"""

from __future__ import annotations

import contextlib
import json
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.io
import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from cellnb.config import Config
from cellnb.io import load_checkpoint

__all__ = ["DecoderConfig", "PAPER", "BLOCK_POINTS", "SineLayer", "Decoder", "siren_init_", "load_official"]

N_COORDS = 4  # (c0, c1, c2, t)
# Points per block of the CPU route of Decoder.forward_grouped: a block's layer activations
# (~1 MB at width 124) stay in the 2 MB-per-core L2 cache between a product and its sine, and
# blocks of that size reuse the allocator's memory instead of faulting in fresh pages.
# Measured on the paper decoder, one thread, forward of 2^17 points: 382k, 362k, 359k, 335k
# points per CPU-second with blocks of 512, 1024, 2048, 4096 points, 143k unblocked; training
# steps of 16 x 9830 points: the same (97-99k) for blocks of 512 to 9830 points.
BLOCK_POINTS = 2048


@dataclass(frozen=True)
class DecoderConfig(Config):
    """Frozen description of a decoder; saved in every checkpoint (profile section ``model``).

    The defaults are the published architecture (:data:`PAPER`).

    Parameters
    ----------
    code_length : int
        Length L of the latent code of a sequence.
    dims : tuple of int
        Widths of the hidden layers (the official ``NetworkSpecs.dims``).
    latent_in : tuple of int
        Indices of layers that receive the whole input ``cat(code, xyzt)`` again.
    xyz_in_all : bool
        Re-inject ``xyzt`` into every other layer after the first.
    use_tanh : bool
        Pass the output through ``tanh``.
    omega : float
        Sine frequency (SIREN's omega_0; 30 in the paper).
    coord_init_bound : float or None
        Initialise the first layer's coordinate columns ``U(-b, b)`` with this
        bound ``b``.  None keeps SIREN's ``1/n`` over the whole input of width
        ``n = code_length + 4``, which narrows the coordinates' initial
        frequencies (at most ``omega / n``) as the code grows: 0.83 at the quick
        profile's ``n = 36``.  SIREN's rule for coordinates alone is ``1/4``
        (frequencies up to 7.5), which the quick profile uses.
    """

    code_length: int = 192
    dims: tuple[int, ...] = (128, 128, 128, 320, 128, 128, 320, 128, 128, 128)
    latent_in: tuple[int, ...] = (4, 7)
    xyz_in_all: bool = True
    use_tanh: bool = False
    omega: float = 30.0
    coord_init_bound: float | None = None

    SECTION = "model"

    def validate(self):
        if self.code_length < 1:
            raise ValueError(f"code_length must be at least 1, got {self.code_length}")
        if not self.dims:
            raise ValueError("dims must list at least one hidden layer width")
        if self.omega <= 0:
            raise ValueError(f"omega must be positive, got {self.omega}")
        if self.coord_init_bound is not None and not self.coord_init_bound > 0:
            raise ValueError(f"coord_init_bound must be positive or null (SIREN's 1/n), got {self.coord_init_bound}")
        widths = self.layer_widths()
        bad = [i for i in self.latent_in if not 0 < i < len(widths) - 1]
        if bad:
            raise ValueError(f"latent_in {bad} must be hidden layer indices between 1 and {len(self.dims)}")
        for i, (_, out) in enumerate(self.layer_shapes()):
            if out < 1:
                raise ValueError(
                    f"layer {i} would have {out} outputs: dims[{i}] is too small for the re-injected "
                    f"input of width {widths[0]}; make it larger or drop it from latent_in"
                )

    def layer_widths(self) -> list[int]:
        """``[code_length + 4, *dims, 1]``: the input width of every layer and the output width."""
        return [self.code_length + N_COORDS, *self.dims, 1]

    def layer_shapes(self) -> list[tuple[int, int]]:
        """``(in_features, out_features)`` of every linear layer, in the official layout."""
        widths = self.layer_widths()
        last = len(widths) - 2
        shapes = []
        for layer in range(len(widths) - 1):
            if layer + 1 in self.latent_in:
                out = widths[layer + 1] - widths[0]
            else:
                out = widths[layer + 1]
                if self.xyz_in_all and layer != last:
                    out -= N_COORDS
            shapes.append((widths[layer], out))
        return shapes



# The published architecture (DESIGN.md): 216,137 parameters at code length 192.
PAPER = DecoderConfig()


def siren_init_(linear: nn.Linear, *, omega: float, is_first: bool) -> nn.Linear:
    """SIREN initialisation (Sitzmann et al. 2020, Sec. 3.2) of a linear layer, in place.

    First layer: U(-1/n, 1/n); later layers: U(-sqrt(6/n)/omega, sqrt(6/n)/omega),
    with n the input width, so pre-activations stay O(1) through sin(omega .).
    """
    n = linear.in_features
    bound = 1.0 / n if is_first else math.sqrt(6.0 / n) / omega
    with torch.no_grad():
        linear.weight.uniform_(-bound, bound)
    return linear


class SineLayer(nn.Module):
    """``sin(omega * (W x + b))`` with SIREN initialisation; owns its frequency."""

    def __init__(self, in_features: int, out_features: int, *, omega: float = 30.0, is_first: bool = False):
        super().__init__()
        self.omega = float(omega)
        self.linear = siren_init_(nn.Linear(in_features, out_features), omega=self.omega, is_first=is_first)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.linear(x))

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        """The activation alone, for callers that computed ``W x + b`` in parts."""
        return torch.sin(self.omega * pre)


class Decoder(nn.Module):
    """SDF decoder conditioned on a latent code (auto-decoder, no encoder).

    Parameters
    ----------
    config : DecoderConfig
    """

    def __init__(self, config: DecoderConfig = PAPER):
        super().__init__()
        self.config = config
        shapes = config.layer_shapes()
        self.hidden = nn.ModuleList(
            SineLayer(i, o, omega=config.omega, is_first=(k == 0)) for k, (i, o) in enumerate(shapes[:-1])
        )
        self.out = siren_init_(nn.Linear(*shapes[-1]), omega=config.omega, is_first=False)
        self._plan = _layer_plan(config)
        if config.coord_init_bound is not None:
            with torch.no_grad():
                self.hidden[0].linear.weight[:, config.code_length :].uniform_(-config.coord_init_bound,
                                                                               config.coord_init_bound)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def training_floats_per_point(self) -> int:
        """Floats :meth:`forward_grouped` keeps per point for the backward pass (either route).

        Every layer's input activation and its pre-activation (the route on
        the CPU keeps its cosine instead, the same size); the training step's
        activation memory is this times 4 bytes times the points of a step.
        """
        shapes = self.config.layer_shapes()
        return sum(layer.hidden for layer in self._plan) + sum(out for _, out in shapes[:-1])

    def linears(self) -> list[nn.Linear]:
        """The linear layers in official order (``lin0``, ``lin1``, ...)."""
        return [layer.linear for layer in self.hidden] + [self.out]

    def _finish(self, y: torch.Tensor) -> torch.Tensor:
        return torch.tanh(y) if self.config.use_tanh else y

    def forward(self, codes: torch.Tensor, xyzt: torch.Tensor) -> torch.Tensor:
        """Official call: one code per point.

        Parameters
        ----------
        codes : Tensor, shape (N, L)
        xyzt : Tensor, shape (N, 4)
            Network coordinates ``(c0, c1, c2, t)`` in [-1, 1].

        Returns
        -------
        sdf : Tensor, shape (N, 1)
        """
        inp = torch.cat([codes, xyzt], dim=1)
        x = inp
        last = len(self.hidden)
        for k, linear in enumerate(self.linears()):
            if k in self.config.latent_in:
                x = torch.cat([x, inp], dim=1)
            elif k != 0 and self.config.xyz_in_all:
                x = torch.cat([x, xyzt], dim=1)
            x = linear(x)
            if k < last:
                x = self.hidden[k].activate(x)
        return self._finish(x)

    def forward_grouped(self, codes: torch.Tensor, xyzt: torch.Tensor) -> torch.Tensor:
        """Many points per code, computing each code's share of the layers once.

        The first layer and every ``latent_in`` layer see the code through a
        term ``W_code @ code`` that is the same for all points of a group; it
        is computed once per group and added as a bias.  The re-injected
        coordinates enter through their own small product with the
        coordinate columns of the weights instead of a concatenation, and the
        sine frequency is folded into the weights.  Same result as
        :meth:`forward` up to float32 rounding, with the code's FLOPs removed
        from the per-point cost.

        Two routes compute it: on the CPU, outside ``torch.compile`` and
        autocast, blocks of :data:`BLOCK_POINTS` points go through all layers
        while their activations are in cache, with a fused backward pass,
        split between ``torch.get_num_threads()`` threads (:class:`_BlockSine`);
        elsewhere (CUDA, compiled, autocast, or when ``xyzt`` requires a
        gradient) one matrix product per layer over all points of the batch,
        where autocast keeps the first layer in float32.

        Parameters
        ----------
        codes : Tensor, shape (B, L)
        xyzt : Tensor, shape (B, P, 4)

        Returns
        -------
        sdf : Tensor, shape (B, P)
        """
        if xyzt.ndim != 3 or codes.ndim != 2 or xyzt.shape[0] != codes.shape[0] or xyzt.shape[2] != N_COORDS:
            raise ValueError(
                f"expected codes (B, L) and xyzt (B, P, 4), got {tuple(codes.shape)} and {tuple(xyzt.shape)}"
            )
        device = xyzt.device.type
        with torch.autocast(device, enabled=False):  # the small folded terms stay float32 (the first layer's)
            folded = self._folded(codes.float())
        # the block route gives no gradient for the coordinates: derivatives in space (normals, eikonal
        # terms) take the autograd route
        if (device == "cpu" and not torch.compiler.is_compiling() and not torch.is_autocast_enabled(device)
                and not (xyzt.requires_grad and torch.is_grad_enabled())):
            flat = [t for layer in folded for t in layer if t is not None]
            train = torch.is_grad_enabled() and any(t.requires_grad for t in flat)
            sdf = _BlockSine.apply(tuple(self._plan), train, xyzt.contiguous(), *flat)
        else:
            sdf = _grouped_layers(self._plan, folded, xyzt)
        return self._finish(sdf)

    def _folded(self, codes: torch.Tensor) -> list[tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor]]:
        """Per layer ``(w_hidden, w_xyz, bias)`` with the sine frequency folded in.

        ``w_hidden`` (hidden, out) multiplies the previous activation and
        ``w_xyz`` (4, out) the coordinates (None where the layer has no such
        input); ``bias`` is ``(B, out)``, one row per code, where the code
        enters the layer (its term ``W_code @ code`` plus the bias), else
        ``(out,)``.  ``sin(omega (W x + b)) == sin((omega W) x + omega b)``:
        scaling the small weights instead of the activations saves a pass
        over them forward and backward.
        """
        L = self.config.code_length
        folded = []
        for layer, linear in zip(self._plan, self.linears()):
            w, b = linear.weight, linear.bias
            h = layer.hidden
            w_hidden = (layer.omega * w[:, :h]).t() if h else None
            w_xyz = (layer.omega * w[:, -N_COORDS:]).t() if layer.xyz else None
            bias = layer.omega * (F.linear(codes, w[:, h : h + L], b) if layer.code else b)
            folded.append((w_hidden, w_xyz, bias))
        return folded


class _Layer(NamedTuple):
    """What one linear layer of the decoder reads, in the official input order ``[hidden | code | xyzt]``."""

    hidden: int  # input columns from the previous activation (0 for the first layer)
    code: bool  # the code enters (first layer and latent_in layers): a bias per code
    xyz: bool  # the coordinates enter (first, latent_in and, with xyz_in_all, all other layers)
    omega: float  # sine frequency folded into the weights (1 for the output layer)


def _layer_plan(config: DecoderConfig) -> list[_Layer]:
    """The :class:`_Layer` of every linear layer of ``config``, in order."""
    shapes = config.layer_shapes()
    plan = []
    for k, (n_in, _) in enumerate(shapes):
        code = k == 0 or k in config.latent_in
        xyz = code or config.xyz_in_all
        hidden = n_in - (config.code_length if code else 0) - (N_COORDS if xyz else 0)
        plan.append(_Layer(hidden, code, xyz, config.omega if k < len(shapes) - 1 else 1.0))
    return plan


def _grouped_layers(plan, folded, xyzt: torch.Tensor) -> torch.Tensor:
    """The layers as one matrix product each over all ``B * P`` points (differentiable, traceable).

    The per-code bias is broadcast over the points of its group.  Under
    autocast the first layer runs in float32: its pre-activations reach
    ``omega`` times the coordinates' scale, where bfloat16 would round the
    sine's argument by up to 0.125.
    """
    B, P, _ = xyzt.shape
    pts = xyzt.reshape(B * P, N_COORDS)
    x = None
    last = len(plan) - 1
    for k, (layer, (w_hidden, w_xyz, bias)) in enumerate(zip(plan, folded)):
        with torch.autocast(xyzt.device.type, enabled=False) if k == 0 else contextlib.nullcontext():
            pre = None if w_hidden is None else x @ w_hidden
            if w_xyz is not None:
                term = pts @ w_xyz
                pre = term if pre is None else pre + term
            pre = (pre.view(B, P, -1) + bias.view(-1, 1, bias.shape[-1])).view(B * P, -1)
        x = torch.sin(pre) if k < last else pre
    return x.view(B, P)


class _BlockSine(torch.autograd.Function):
    """The CPU route of :meth:`Decoder.forward_grouped`: blocks of points, fused backward, threads.

    Inputs are the folded tensors of :meth:`Decoder._folded` (autograd
    carries their gradients on to the weights and codes).  Each block of at
    most :data:`BLOCK_POINTS` points of one group runs through all layers;
    for training it keeps every layer's input and ``cos`` of its
    pre-activation, so the backward pass needs one product per weight and
    one multiplication per layer.  Where the coordinates enter, they and a
    column of ones multiply ``[w_xyz; bias]`` in one product, which also
    gives the bias's gradient (no broadcast copy of the bias, no separate
    sum).  Blocks are dealt round-robin to ``torch.get_num_threads()``
    worker threads, each running its kernels on one thread: on a small
    shared CPU this scales where many small kernels split across threads
    wait for each other.  Each worker sums its own gradients and the main
    thread adds the workers' sums in order, so results are the same from run
    to run for a given thread count.
    """

    @staticmethod
    def forward(ctx, plan, train, xyzt, *flat):
        layers = _unflatten(plan, flat)
        B, P, _ = xyzt.shape
        blocks = [(b, s, min(P, s + BLOCK_POINTS)) for b in range(B) for s in range(0, P, BLOCK_POINTS)]
        # [w_xyz; bias] per layer that reads the coordinates, one per code where the code enters
        affine = [None if w_xyz is None else
                  torch.cat([w_xyz.expand(B, -1, -1), bias.expand(B, -1)[:, None]], dim=1)
                  for w_xyz, bias in ((layer[1], layer[2]) for layer in layers)]
        ones = torch.ones((B, P, 1), dtype=xyzt.dtype)
        pts1 = torch.cat([xyzt, ones], dim=2)
        out = torch.empty((B, P), dtype=xyzt.dtype)
        saved = [None] * len(blocks)

        def run(i, _):
            b, s, e = blocks[i]
            pts, x, keep = pts1[b, s:e], None, []
            for k, (layer, (w_hidden, _, bias), aff) in enumerate(zip(plan, layers, affine)):
                if aff is None:
                    pre = torch.addmm(bias[b] if layer.code else bias, x, w_hidden)
                else:
                    pre = torch.mm(pts, aff[b])
                    if w_hidden is not None:
                        pre.addmm_(x, w_hidden)
                if train:
                    keep.append(x)
                if k == len(plan) - 1:
                    out[b, s:e] = pre[:, 0]
                else:
                    x = torch.sin(pre)
                    if train:
                        keep.append(pre.cos_())
            if train:
                saved[i] = keep

        _in_workers(len(blocks), run, lambda: None)
        if train:
            ctx.plan, ctx.blocks, ctx.saved, ctx.layers = plan, blocks, saved, layers
            ctx.save_for_backward(pts1)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        (pts1,) = ctx.saved_tensors
        plan, blocks, saved, layers = ctx.plan, ctx.blocks, ctx.saved, ctx.layers
        B = pts1.shape[0]
        needs = iter(ctx.needs_input_grad[3:])
        wanted = [[t is not None and next(needs) for t in layer] for layer in layers]
        grad = grad.contiguous()

        def zeros():  # a worker's sums: hidden weights, and [w_xyz; bias] (one per code) or the bias
            acc = []
            for (w_hidden, w_xyz, bias), (want_hidden, want_xyz, want_bias) in zip(layers, wanted):
                d_hidden = torch.zeros_like(w_hidden) if want_hidden else None
                if w_xyz is not None:
                    d_rest = torch.zeros((B, N_COORDS + 1, w_xyz.shape[1])) if want_xyz or want_bias else None
                else:
                    d_rest = torch.zeros_like(bias) if want_bias else None
                acc.append((d_hidden, d_rest))
            return acc

        def run(i, acc):
            b, s, e = blocks[i]
            keep, saved[i] = saved[i], None  # free each block's activations once used
            pts, g = pts1[b, s:e], grad[b, s:e, None]
            for k in range(len(plan) - 1, -1, -1):
                layer, (w_hidden, w_xyz, _), (d_hidden, d_rest) = plan[k], layers[k], acc[k]
                if d_hidden is not None:
                    d_hidden.addmm_(keep[2 * k].t(), g)
                if d_rest is not None:
                    if w_xyz is not None:
                        d_rest[b].addmm_(pts.t(), g)
                    else:
                        (d_rest[b] if layer.code else d_rest).add_(g.sum(0))
                if k:
                    g = torch.mm(g, w_hidden.t()).mul_(keep[2 * k - 1])

        sums = _in_workers(len(blocks), run, zeros)
        total = sums[0]
        for more in sums[1:]:
            for layer, extra in zip(total, more):
                for t, e in zip(layer, extra):
                    if t is not None:
                        t.add_(e)
        ctx.saved = ctx.layers = None
        flat = []
        for (w_hidden, w_xyz, bias), layer, (d_hidden, d_rest) in zip(layers, plan, total):
            if w_hidden is not None:
                flat.append(d_hidden)
            if w_xyz is None:
                flat.append(d_rest)
            elif d_rest is None:
                flat += [None, None]
            else:  # rows 0..3 multiply the coordinates, row 4 the ones (the bias)
                flat += [d_rest[:, :N_COORDS].sum(0), d_rest[:, N_COORDS] if layer.code else d_rest[:, N_COORDS].sum(0)]
        return (None, None, None, *flat)


def _unflatten(plan, flat):
    """The ``(w_hidden, w_xyz, bias)`` of every layer from the flat list of its present tensors."""
    it = iter(flat)
    return [(next(it) if layer.hidden else None, next(it) if layer.xyz else None, next(it)) for layer in plan]


def _in_workers(n_blocks: int, run, accumulator):
    """Run ``run(i, acc)`` for blocks ``0..n_blocks-1`` dealt round-robin to worker threads.

    ``accumulator()`` makes each worker's ``acc``; returns the workers'
    accumulators in worker order.  With more than one thread, each worker
    runs its kernels on one thread, and torch's thread count (which MKL
    shares between threads) is restored afterwards.
    """
    threads = torch.get_num_threads()
    workers = min(threads, n_blocks)

    def worker(w):
        if workers > 1:
            torch.set_num_threads(1)
        acc = accumulator()
        with torch.no_grad():
            for i in range(w, n_blocks, workers):
                run(i, acc)
        return acc

    if workers <= 1:
        return [worker(0)]
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="cellnb-block") as pool:
            return list(pool.map(worker, range(workers)))
    finally:
        torch.set_num_threads(threads)


def load_official(specs_json, model_pth, lat_vecs_mat):
    """Import a model trained by the official implementation (Wiesner et al. 2022).

    Parameters
    ----------
    specs_json : path-like
        The experiment's ``specs.json``: ``CodeLength`` and ``NetworkSpecs``
        (``dims``, ``latent_in``, ``xyz_in_all``, ``use_tanh``; other keys such
        as dropout do not change the trained function and are ignored).
    model_pth : path-like
        ``model.pth``: ``{"epoch", "model_state_dict"}`` with keys
        ``module.lin{i}.weight|bias`` (``weight_g``/``weight_v`` of weight-normed
        layers are folded into one weight).  Loaded with ``weights_only=True``.
    lat_vecs_mat : path-like
        ``lat_vecs.mat`` holding the variable ``lat_vecs``, one code per row.

    Returns
    -------
    decoder : Decoder
        In eval mode; ``decoder(codes[s].expand(N, -1), xyzt)`` gives the
        official output for sequence ``s``.
    codes : Tensor of float32, shape (S, L)
    """
    specs_path = Path(specs_json)
    if not specs_path.is_file():
        raise FileNotFoundError(f"specs file {specs_path} does not exist")
    try:
        specs = json.loads(specs_path.read_text())
        net = specs["NetworkSpecs"]
        code_length = int(specs["CodeLength"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(
            f"{specs_path} is not an official specs.json with CodeLength and NetworkSpecs ({err!r})"
        ) from None
    if net.get("norm_layers") and not net.get("weight_norm"):
        raise ValueError(f"{specs_path}: layer normalisation (norm_layers without weight_norm) is not supported")
    config = DecoderConfig(
        code_length=code_length,
        dims=tuple(net["dims"]),
        latent_in=tuple(net.get("latent_in", ())),
        xyz_in_all=bool(net.get("xyz_in_all", False)),
        use_tanh=bool(net.get("use_tanh", False)),
        omega=float(net.get("omega", net.get("omega_0", 30.0))),
    )
    saved = load_checkpoint(model_pth)
    state = saved.get("model_state_dict", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{model_pth} holds no model_state_dict")
    state = {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state.items()}
    decoder = Decoder(config)
    with torch.no_grad():
        for i, linear in enumerate(decoder.linears()):
            if f"lin{i}.weight" in state:
                weight = state[f"lin{i}.weight"]
            elif f"lin{i}.weight_v" in state:
                v, g = state[f"lin{i}.weight_v"], state[f"lin{i}.weight_g"]
                weight = g * v / v.norm(dim=1, keepdim=True)
            else:
                raise ValueError(f"{model_pth} has no weights for layer lin{i}; does specs.json match the model?")
            bias = state.get(f"lin{i}.bias")
            if tuple(weight.shape) != tuple(linear.weight.shape) or bias is None or bias.shape != linear.bias.shape:
                raise ValueError(
                    f"{model_pth}: layer lin{i} has weight {tuple(weight.shape)}, expected "
                    f"{tuple(linear.weight.shape)} from {specs_path.name}; the specs do not match the model"
                )
            linear.weight.copy_(weight)
            linear.bias.copy_(bias)
    parts = ("weight", "weight_v", "weight_g", "bias")
    used = {f"lin{i}.{part}" for i in range(len(decoder.linears())) for part in parts}
    extra = sorted(set(state) - used)
    if extra:
        raise ValueError(f"{model_pth} has parameters {extra} that this decoder does not have")
    mat_path = Path(lat_vecs_mat)
    if not mat_path.is_file():
        raise FileNotFoundError(f"latent code file {mat_path} does not exist")
    try:
        lat = np.asarray(scipy.io.loadmat(mat_path)["lat_vecs"], dtype=np.float32)
    except (KeyError, ValueError, OSError) as err:
        raise ValueError(f"{mat_path} is not a .mat file with a variable lat_vecs ({err!r})") from None
    if lat.ndim != 2 or lat.shape[1] != code_length:
        raise ValueError(f"{mat_path}: lat_vecs has shape {lat.shape}, expected (sequences, {code_length})")
    return decoder.eval(), torch.from_numpy(lat)
