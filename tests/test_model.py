"""cellnb.model: the official layout, SIREN initialisation, grouped == per-point."""

import math

import pytest
import torch

from cellnb.model import PAPER, Decoder, DecoderConfig
from cellnb.profile import load_profile

QUICK = load_profile("quick").model


def test_paper_architecture_has_published_parameter_count():
    assert Decoder(PAPER).n_parameters() == 216_137  # DESIGN.md


def test_layer_shapes_follow_official_rules():
    shapes = PAPER.layer_shapes()
    assert shapes[0] == (196, 124)  # xyz re-injected into the next layer: 128 - 4
    assert shapes[3] == (128, 124)  # before latent_in layer 4: 320 - 196
    assert shapes[4] == (320, 124)
    assert shapes[-1] == (128, 1)


@pytest.mark.parametrize("config", [PAPER, QUICK, DecoderConfig(code_length=8, dims=(32, 32), latent_in=(), use_tanh=True)])
def test_grouped_forward_equals_per_point_forward(config):
    torch.manual_seed(0)
    dec = Decoder(config)
    codes = 0.1 * torch.randn(3, config.code_length)
    xyzt = torch.rand(3, 50, 4) * 2 - 1
    grouped = dec.forward_grouped(codes, xyzt)
    per_point = dec(codes[:, None].expand(-1, 50, -1).reshape(-1, config.code_length), xyzt.reshape(-1, 4))
    assert grouped.shape == (3, 50) and per_point.shape == (150, 1)
    assert torch.allclose(grouped.reshape(-1), per_point[:, 0], atol=1e-6)


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
