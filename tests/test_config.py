"""Profiles, overrides and the run directory layout."""

import pytest

from cellnb.config import PROFILES, load_profile
from cellnb.model import PAPER, DecoderConfig
from cellnb.workspace import RunDir


def test_profiles_load_and_paper_profile_is_the_published_model():
    for name in PROFILES:
        profile = load_profile(name)
        assert {"data", "model", "train", "generate"} <= set(profile)
    assert DecoderConfig.from_dict(load_profile("paper")["model"]) == PAPER
    assert load_profile("paper")["data"]["size"] == 256


def test_overrides_apply_and_typos_are_refused():
    base = load_profile("quick")["data"]["size"]
    p = load_profile("quick", {"data": {"size": base + 1}})
    assert p["data"]["size"] == base + 1 and load_profile("quick")["data"]["size"] == base
    with pytest.raises(ValueError, match="unknown parameter 'sizes'"):
        load_profile("quick", {"data": {"sizes": 16}})
    with pytest.raises(ValueError, match="unknown profile"):
        load_profile("fast")


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
