"""cellnb.model.load_official: official checkpoints give the official output.

The reference forward pass below is written from DESIGN.md's description of
the official decoder (input ``cat(code, xyzt)``; a ``latent_in`` layer gets
``cat(h, input)``; with ``xyz_in_all`` every other layer after the first gets
``cat(h, xyzt)``; ``sin(30 x)`` after every layer but the last), with plain
torch ops on the raw state dict, independent of cellnb.model.
"""

import json
import pickle

import numpy as np
import pytest
import scipy.io
import torch

from cellnb.io import load_checkpoint
from cellnb.model import PAPER, load_official

OMEGA = 30.0


def official_layer_shapes(code_length, dims, latent_in, xyz_in_all):
    """(in, out) of lin0.. following DESIGN.md's layout rule."""
    widths = [code_length + 4, *dims, 1]
    shapes = []
    for layer in range(len(widths) - 1):
        if layer + 1 in latent_in:
            out = widths[layer + 1] - widths[0]
        else:
            out = widths[layer + 1]
            if xyz_in_all and layer != len(widths) - 2:
                out -= 4
        shapes.append((widths[layer], out))
    return shapes


def reference_forward(state, specs, codes, xyzt):
    net = specs["NetworkSpecs"]
    n_layers = len(net["dims"]) + 1
    inp = torch.cat([codes, xyzt], dim=1)
    x = inp
    for layer in range(n_layers):
        if layer in net["latent_in"]:
            x = torch.cat([x, inp], dim=1)
        elif layer != 0 and net["xyz_in_all"]:
            x = torch.cat([x, xyzt], dim=1)
        x = x @ state[f"module.lin{layer}.weight"].T + state[f"module.lin{layer}.bias"]
        if layer < n_layers - 1:
            x = torch.sin(OMEGA * x)
    return torch.tanh(x) if net["use_tanh"] else x


def write_official(tmp_path, *, code_length, dims, latent_in, xyz_in_all, use_tanh, n_codes=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for i, (n_in, n_out) in enumerate(official_layer_shapes(code_length, dims, latent_in, xyz_in_all)):
        bound = 1.0 / n_in if i == 0 else np.sqrt(6.0 / n_in) / OMEGA
        state[f"module.lin{i}.weight"] = (torch.rand(n_out, n_in, generator=gen) * 2 - 1) * bound
        state[f"module.lin{i}.bias"] = (torch.rand(n_out, generator=gen) * 2 - 1) * 0.1
    specs = {
        "Description": ["test"],
        "CodeLength": code_length,
        "NetworkSpecs": {"dims": list(dims), "dropout": [], "dropout_prob": 0.0, "norm_layers": [],
                         "latent_in": list(latent_in), "xyz_in_all": xyz_in_all, "use_tanh": use_tanh},
    }
    codes = torch.randn(n_codes, code_length, generator=gen).numpy().astype(np.float32)
    paths = tmp_path / "specs.json", tmp_path / "model.pth", tmp_path / "lat_vecs.mat"
    paths[0].write_text(json.dumps(specs))
    torch.save({"epoch": 7, "model_state_dict": state}, paths[1])
    scipy.io.savemat(paths[2], {"lat_vecs": codes})
    return paths, state, specs, codes


@pytest.mark.parametrize(
    "arch",
    [
        dict(code_length=PAPER.code_length, dims=PAPER.dims, latent_in=PAPER.latent_in, xyz_in_all=True,
             use_tanh=False),
        dict(code_length=16, dims=(64, 64, 64), latent_in=(2,), xyz_in_all=False, use_tanh=True),
    ],
)
def test_imported_decoder_matches_reference_forward(tmp_path, arch):
    paths, state, specs, codes = write_official(tmp_path, **arch)
    decoder, lat = load_official(*paths)
    assert lat.shape == codes.shape and torch.equal(lat, torch.from_numpy(codes))
    gen = torch.Generator().manual_seed(1)
    seq = torch.randint(0, codes.shape[0], (500,), generator=gen)
    xyzt = torch.rand(500, 4, generator=gen) * 2 - 1
    per_point_codes = lat[seq]
    with torch.no_grad():
        ours = decoder(per_point_codes, xyzt)
        expected = reference_forward(state, specs, per_point_codes, xyzt)
        grouped = decoder.forward_grouped(lat[:1], xyzt[None])
        expected_first = reference_forward(state, specs, lat[:1].expand(500, -1), xyzt)
    assert ours.shape == (500, 1)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(grouped[0], expected_first[:, 0], rtol=0, atol=1e-5)
    assert expected.std() > 0.01  # the comparison is not between two constants


def test_paper_decoder_has_published_size_and_weights_file_under_1mb(tmp_path):
    paths, _, _, _ = write_official(tmp_path, code_length=192, dims=PAPER.dims, latent_in=PAPER.latent_in,
                                    xyz_in_all=True, use_tanh=False)
    decoder, _ = load_official(*paths)
    assert decoder.n_parameters() == 216_137
    torch.save(decoder.state_dict(), tmp_path / "decoder.pt")
    assert (tmp_path / "decoder.pt").stat().st_size < 1_000_000


def test_weight_normed_layers_are_folded(tmp_path):
    arch = dict(code_length=8, dims=(32, 32), latent_in=(), xyz_in_all=False, use_tanh=False)
    paths, state, specs, _ = write_official(tmp_path, **arch)
    gen = torch.Generator().manual_seed(3)
    normed = dict(state)
    w = normed.pop("module.lin1.weight")
    v = torch.rand(w.shape, generator=gen) + 0.5
    normed["module.lin1.weight_v"], normed["module.lin1.weight_g"] = v, w.norm(dim=1, keepdim=True)
    state["module.lin1.weight"] = normed["module.lin1.weight_g"] * v / v.norm(dim=1, keepdim=True)
    torch.save({"epoch": 1, "model_state_dict": normed}, paths[1])
    decoder, lat = load_official(*paths)
    xyzt = torch.rand(50, 4, generator=gen) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(decoder(lat[:1].expand(50, -1), xyzt),
                                   reference_forward(state, specs, lat[:1].expand(50, -1), xyzt), rtol=0, atol=1e-5)


def test_mismatching_specs_are_refused(tmp_path):
    paths, _, specs, _ = write_official(tmp_path, code_length=8, dims=(32, 32), latent_in=(), xyz_in_all=False,
                                        use_tanh=False)
    specs["NetworkSpecs"]["dims"] = [32, 48]
    paths[0].write_text(json.dumps(specs))
    with pytest.raises(ValueError, match="lin1"):
        load_official(*paths)
    specs["NetworkSpecs"]["dims"] = [32, 32]
    specs["CodeLength"] = 9
    paths[0].write_text(json.dumps(specs))
    with pytest.raises(ValueError, match="specs do not match"):
        load_official(*paths)


def test_bad_files_give_clear_errors(tmp_path):
    paths, _, _, _ = write_official(tmp_path, code_length=8, dims=(32, 32), latent_in=(), xyz_in_all=False,
                                    use_tanh=False)
    with pytest.raises(FileNotFoundError):
        load_official(tmp_path / "missing.json", paths[1], paths[2])
    scipy.io.savemat(paths[2], {"codes": np.zeros((2, 8), np.float32)})
    with pytest.raises(ValueError, match="lat_vecs"):
        load_official(*paths)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(paths[1].read_bytes()[:200])
    with pytest.raises(ValueError, match="truncated"):
        load_official(paths[0], truncated, paths[2])


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def test_pickle_with_code_is_refused_by_safe_loading(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model_state_dict": _RunsCode()}, f, protocol=2)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(path)
    torch.save({"epoch": 1, "model_state_dict": {"lin0.weight": _RunsCode()}}, tmp_path / "evil2.pth")
    with pytest.raises(ValueError, match="could run code"):
        load_checkpoint(tmp_path / "evil2.pth")
