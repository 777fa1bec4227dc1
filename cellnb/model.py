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

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import torch
import torch.nn.functional as F
from torch import nn

from cellnb.config import Config
from cellnb.io import load_checkpoint

__all__ = ["DecoderConfig", "PAPER", "SineLayer", "Decoder", "siren_init_", "load_official"]

N_COORDS = 4  # (c0, c1, c2, t)


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
        if config.coord_init_bound is not None:
            with torch.no_grad():
                self.hidden[0].linear.weight[:, config.code_length :].uniform_(-config.coord_init_bound,
                                                                               config.coord_init_bound)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

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
        is computed once per group and added as a bias.  Same result as
        :meth:`forward` up to float32 rounding, with the code's FLOPs removed
        from the per-point cost (and the sine frequency folded into the
        weights, which saves a pass over the activations).

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
        L = self.config.code_length
        last = len(self.hidden)
        x = xyzt
        for k, linear in enumerate(self.linears()):
            w, b = linear.weight, linear.bias
            # sin(omega (W x + b)) == sin((omega W) x + omega b): scaling the small weight
            # instead of the activations saves a pass over them forward and backward.
            omega = self.hidden[k].omega if k < last else 1.0
            if k == 0 or k in self.config.latent_in:
                h = w.shape[1] - L - N_COORDS  # width of the hidden part (0 for the first layer)
                code_term = F.linear(codes, w[:, h : h + L], b)  # (B, out): once per group
                if h:
                    inp, w_pts = torch.cat([x, xyzt], dim=2), torch.cat([w[:, :h], w[:, h + L :]], dim=1)
                else:
                    inp, w_pts = xyzt, w[:, h + L :]
                w_pts = (omega * w_pts).t().expand(codes.shape[0], -1, -1)
                pre = torch.baddbmm((omega * code_term)[:, None, :], inp, w_pts)
            elif self.config.xyz_in_all:
                pre = F.linear(torch.cat([x, xyzt], dim=2), omega * w, omega * b)
            else:
                pre = F.linear(x, omega * w, omega * b)
            x = torch.sin(pre) if k < last else pre
        return self._finish(x).squeeze(-1)


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
