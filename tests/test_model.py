"""cellnb.model: the official layout, SIREN initialisation, grouped == per-point."""

import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from cellnb import model
from cellnb.model import PAPER, Decoder, DecoderConfig
from cellnb.profile import load_profile

QUICK = load_profile("quick").model

CONFIGS = [PAPER, QUICK, DecoderConfig(code_length=8, dims=(32, 32), latent_in=(), use_tanh=True),
           DecoderConfig(code_length=6, dims=(24, 40, 24, 40), latent_in=(2,), xyz_in_all=True)]


def test_paper_architecture_has_published_parameter_count():
    assert Decoder(PAPER).n_parameters() == 216_137  # DESIGN.md


def test_layer_shapes_follow_official_rules():
    shapes = PAPER.layer_shapes()
    assert shapes[0] == (196, 124)  # xyz re-injected into the next layer: 128 - 4
    assert shapes[3] == (128, 124)  # before latent_in layer 4: 320 - 196
    assert shapes[4] == (320, 124)
    assert shapes[-1] == (128, 1)


@pytest.mark.parametrize("config", CONFIGS)
def test_grouped_forward_equals_per_point_forward(config):
    torch.manual_seed(0)
    dec = Decoder(config)
    codes = 0.1 * torch.randn(3, config.code_length)
    xyzt = torch.rand(3, 50, 4) * 2 - 1
    grouped = dec.forward_grouped(codes, xyzt)
    per_point = dec(codes[:, None].expand(-1, 50, -1).reshape(-1, config.code_length), xyzt.reshape(-1, 4))
    assert grouped.shape == (3, 50) and per_point.shape == (150, 1)
    assert torch.allclose(grouped.reshape(-1), per_point[:, 0], atol=1e-6)


def _per_point(dec, codes, xyzt):
    B, P, _ = xyzt.shape
    return dec(codes[:, None].expand(-1, P, -1).reshape(B * P, -1), xyzt.reshape(B * P, 4)).view(B, P)


def _routes(dec, codes, xyzt):
    """Both routes of forward_grouped: the CPU blocks (the default here) and one product per layer."""
    return {"blocks": dec.forward_grouped(codes, xyzt),
            "layers": dec._finish(model._grouped_layers(dec._plan, dec._folded(codes), xyzt))}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("config", CONFIGS)
def test_both_routes_give_the_per_point_values_and_gradients(config, threads, monkeypatch):
    # Blocks of 16 points: 4 blocks per group of 50 (the last one short), shared between the threads.
    monkeypatch.setattr(model, "BLOCK_POINTS", 16)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dec = Decoder(config)
    codes = (0.3 * torch.randn(3, config.code_length)).requires_grad_()
    xyzt = torch.rand(3, 50, 4) * 2 - 1
    weights = torch.randn(3, 50)  # a loss that weighs every output differently

    def grads(out):
        params = [codes, *dec.parameters()]
        return out, torch.autograd.grad((out * weights).sum(), params)

    try:
        ref, ref_grads = grads(_per_point(dec, codes, xyzt))
        for name, out in _routes(dec, codes, xyzt).items():
            out, got = grads(out)
            assert torch.allclose(out, ref, atol=1e-6), name
            for g, r in zip(got, ref_grads):
                assert torch.allclose(g, r, rtol=1e-4, atol=1e-5 * r.abs().max()), name
        assert torch.get_num_threads() == threads  # the workers' one-thread setting does not leak
    finally:
        torch.set_num_threads(before)


def test_gradients_in_space_follow_the_per_point_forward():
    torch.manual_seed(0)
    dec = Decoder(PAPER)
    codes = 0.1 * torch.randn(2, PAPER.code_length)
    xyzt = (torch.rand(2, 30, 4) * 2 - 1).requires_grad_()
    (g,) = torch.autograd.grad(dec.forward_grouped(codes, xyzt).sum(), xyzt)
    (ref,) = torch.autograd.grad(_per_point(dec, codes, xyzt).sum(), xyzt)
    assert g.abs().max() > 0 and torch.allclose(g, ref, rtol=1e-4, atol=1e-5 * ref.abs().max())


def test_blocks_route_gives_code_gradients_of_a_frozen_decoder_and_runs_without_autograd():
    torch.manual_seed(0)
    dec = Decoder(PAPER)
    for p in dec.parameters():
        p.requires_grad_(False)
    code = (0.1 * torch.randn(1, PAPER.code_length)).requires_grad_()
    xyzt = torch.rand(1, 3000, 4) * 2 - 1  # two blocks
    (g,) = torch.autograd.grad(dec.forward_grouped(code, xyzt).sum(), code)
    (ref,) = torch.autograd.grad(_per_point(dec, code, xyzt).sum(), code)
    assert torch.allclose(g, ref, rtol=1e-4, atol=1e-5 * ref.abs().max())
    with torch.no_grad():
        out = dec.forward_grouped(code, xyzt)
    assert not out.requires_grad and torch.allclose(out, _per_point(dec, code, xyzt), atol=1e-6)


class _MatmulDtypes(TorchDispatchMode):
    """Records the dtype of the first operand of every matrix product."""

    def __init__(self):
        super().__init__()
        self.dtypes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten.mm.default, torch.ops.aten.addmm.default):
            self.dtypes.append(args[-2].dtype)
        return func(*args, **(kwargs or {}))


def test_grouped_forward_under_autocast_keeps_the_first_layer_in_float32():
    torch.manual_seed(0)
    dec = Decoder(PAPER)
    codes = 0.3 * torch.randn(2, PAPER.code_length)
    xyzt = torch.rand(2, 40, 4) * 2 - 1
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), _MatmulDtypes() as spy:
        low = dec.forward_grouped(codes, xyzt)
    # the code terms of the 3 code layers and the first layer's product stay float32, the rest is bfloat16
    n_float = 1 + len(PAPER.latent_in) + 1
    assert spy.dtypes[:n_float] == [torch.float32] * n_float
    assert set(spy.dtypes[n_float:]) == {torch.bfloat16}
    ref = _per_point(dec, codes, xyzt)
    err = (low.float() - ref).abs().max().item()
    assert 0 < err < 0.05  # bfloat16 products in the later layers only


def test_siren_initialisation_bounds():
    torch.manual_seed(0)
    dec = Decoder(PAPER)
    first = dec.linears()[0]
    bound = 1.0 / first.in_features
    assert first.weight.abs().max() <= bound and first.weight.abs().max() > 0.9 * bound
    hidden = dec.linears()[1]
    assert hidden.weight.abs().max() <= math.sqrt(6.0 / hidden.in_features) / PAPER.omega
    assert all(layer.omega == 30.0 for layer in dec.hidden)


def test_coordinate_columns_of_the_first_layer_take_their_own_bound():
    torch.manual_seed(0)
    first = Decoder(QUICK).linears()[0].weight.detach()
    code, coords = first[:, : QUICK.code_length].abs(), first[:, QUICK.code_length :].abs()
    assert coords.shape[1] == 4 and QUICK.coord_init_bound == 0.25
    assert 0.9 * 0.25 < coords.max() <= 0.25  # SIREN's 1/n for the 4 coordinates alone
    assert code.max() <= 1.0 / first.shape[1]  # the code columns keep 1/n over the whole input
    with pytest.raises(ValueError, match="coord_init_bound"):
        DecoderConfig(coord_init_bound=0.0)


def test_config_round_trip_and_validation():
    assert DecoderConfig.from_dict(PAPER.to_dict()) == PAPER
    with pytest.raises(ValueError, match=r"unknown model parameter\(s\) \[.width.\]"):
        DecoderConfig.from_dict({"code_length": 4, "width": 3})
    with pytest.raises(ValueError, match="latent_in"):
        DecoderConfig(dims=(64, 64), latent_in=(5,))
    with pytest.raises(ValueError, match="too small"):
        DecoderConfig(code_length=192, dims=(128, 128), latent_in=(1,))
