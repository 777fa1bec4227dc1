"""Profiles, typed config sections, overrides and the run directory layout."""

import json

import pytest

from cellnb.config import profile_names
from cellnb.generate import GenerateConfig
from cellnb.model import PAPER
from cellnb.prepare import DataConfig
from cellnb.model import Decoder
from cellnb.profile import EXTENDS, PROFILES, SECTIONS, load_profile, parse_overrides
from cellnb.train import TrainConfig
from cellnb.workspace import RunDir


def test_profiles_load_and_paper_profile_is_the_published_model():
    assert PROFILES == profile_names() == ("paper", "quick", "standard")
    for name in PROFILES:
        profile = load_profile(name)
        assert set(profile.to_dict()) == {"profile", *SECTIONS}
        json.dumps(profile.to_dict())
    assert load_profile("paper").model == PAPER
    assert load_profile("paper").data.size == 256


def test_profiles_hold_only_what_differs_from_the_defaults():
    """One source of truth: a value a profile file repeats from the section's defaults is a second copy."""
    from cellnb.profile import _read

    for name in PROFILES:
        text = _read(name)
        base = text.pop(EXTENDS, None)  # a profile that extends another may repeat none of its values
        for section, values in text.items():
            defaults = (getattr(load_profile(base), section) if base else SECTIONS[section]()).to_dict()
            repeated = {k: v for k, v in values.items() if defaults[k] == v}
            assert not repeated, f"{name}.json {section} repeats {base or 'the defaults'} {repeated}"


def test_the_standard_profile_is_quick_with_a_decoder_between_quick_and_paper():
    quick, standard, paper = (load_profile(n) for n in ("quick", "standard", "paper"))
    assert standard.model == quick.model.replace(dims=(256,) * 4)
    assert all(getattr(standard, s) == getattr(quick, s) for s in SECTIONS if s != "model")
    sizes = [sum(p.numel() for p in Decoder(p.model).parameters()) for p in (quick, standard, paper)]
    assert sizes[0] < sizes[1] < sizes[2], sizes
    # Overrides apply on top of what the profile changes in the one it extends.
    assert load_profile("standard", {"model": {"code_length": 16}}).model.dims == (256,) * 4


def test_a_loop_of_extends_is_one_line(monkeypatch):
    from cellnb import profile

    files = {"a": {"extends": "b"}, "b": {"extends": "a"}}
    monkeypatch.setattr(profile, "PROFILES", ("a", "b"))
    monkeypatch.setattr(profile, "_read", lambda name: dict(files[name]))
    with pytest.raises(ValueError, match="profiles extend each other in a loop: a -> b -> a"):
        profile.load_profile("a")


def test_overrides_apply_and_typos_and_wrong_types_are_refused():
    base = load_profile("quick").data.size
    p = load_profile("quick", {"data": {"size": base + 1}})
    assert p.data.size == base + 1 and load_profile("quick").data.size == base
    with pytest.raises(ValueError, match=r"unknown data parameter\(s\) \['sizes'\]"):
        load_profile("quick", {"data": {"sizes": 16}})
    with pytest.raises(ValueError, match=r"unknown profile section\(s\) \['trian'\]"):
        load_profile("quick", {"trian": {"epochs": 16}})
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("fast")
    with pytest.raises(ValueError, match="train.epochs must be an integer, got 'five'"):
        load_profile("quick", {"train": {"epochs": "five"}})
    with pytest.raises(ValueError, match="train.compile must be true or false, got 'yes'"):
        load_profile("quick", {"train": {"compile": "yes"}})
    with pytest.raises(ValueError, match="generate.formats must be a list of a string"):
        load_profile("quick", {"generate": {"formats": "h5"}})
    with pytest.raises(ValueError, match="data.seed must be a non-negative"):
        load_profile("quick", {"data": {"seed": -1}})
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_overrides("{train: 5}")
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_overrides("[1]")


def test_sections_are_frozen_checked_and_round_trip():
    cfg = TrainConfig(epochs=7, clamp=0.2)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.replace(epochs=9).epochs == 9 and cfg.epochs == 7
    with pytest.raises(AttributeError):
        cfg.epochs = 3
    assert TrainConfig(lr_decoder=1).lr_decoder == 1.0 and isinstance(TrainConfig(lr_decoder=1).lr_decoder, float)
    assert GenerateConfig(formats=["h5", "gif"]).formats == ("h5", "gif")
    with pytest.raises(ValueError, match="data.size must be at least 8"):
        DataConfig(size=4)


def test_run_dir_layout_and_metrics_sections(tmp_path):
    run = RunDir(tmp_path / "r")
    with pytest.raises(FileNotFoundError, match="01_data_preparation"):
        run.data_files()
    with pytest.raises(FileNotFoundError, match="02_training"):
        run.require_checkpoint()
    run.update_metrics("data", {"n": 3})
    run.update_metrics("train", {"dice_mean": 0.9})
    run.update_metrics("data", {"n": 4})
    assert run.read_metrics() == {"data": {"n": 4}, "train": {"dice_mean": 0.9}}
    assert run.metrics_path == tmp_path / "r" / "metrics.json"
    run.drop_metrics(["train", "generate"])
    assert run.read_metrics() == {"data": {"n": 4}}
    assert run.record_path(run.data) == "data" and run.record_path(tmp_path) == str(tmp_path.resolve())
