"""params.yaml must be exactly what conf/ composes to, and every entry point must explain itself."""

import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hawk.classes import parse_classes
from hawk.download.run import DownloadOptions
from hawk.spectrogram import SpecSettings
from hawk.training.run import TrainSettings
from tests import procs
from tests.conftest import ROOT


def composed(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return OmegaConf.to_container(compose(config_name="config", overrides=list(overrides)), resolve=True)


def test_params_yaml_is_the_composition_of_conf():
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert params == composed(), "params.yaml drifted from conf/: run `make params`"


def test_composed_config_is_valid():
    cfg = composed()
    assert [c.code for c in parse_classes(cfg["classes"])][-2:] == ["Noise", "Other"]
    assert SpecSettings.from_mapping(cfg["audio"]) == SpecSettings()
    DownloadOptions.from_config(cfg["download"])
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        example = OmegaConf.to_container(compose(config_name="config", overrides=["classes=example"]), resolve=True)
    assert "FROG-LEOP" in [c.code for c in parse_classes(example["classes"])]
    for preset, key, value in (("train_all", "val_portion", 0), ("transfer_learning", "freeze_backbone", True),
                               ("search", "model_name", "custom_hgnet_1")):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
            cfg = OmegaConf.to_container(compose(config_name="config", overrides=[f"experiment={preset}"]))
        assert cfg["train"][key] == value, preset
        TrainSettings.from_mapping(cfg["train"])


@pytest.mark.parametrize("stage", ["download", "extract", "plot", "testset", "classes", "compose", "embed", "dedup", "search",
                                   "select", "trainset", "curate", "reextract", "pickle", "train", "infer", "test"])
def test_entry_points_have_help(stage):
    out = procs.run([sys.executable, "-m", f"stages.{stage}", "--help"], cwd=ROOT)
    assert out.returncode == 0 and "usage:" in out.stdout and len(out.stdout) > 200


def test_overrides_by_hand(tmp_path):
    out = procs.run([sys.executable, "-m", "stages.extract", "--code", "RIWH", "--cfg", "audio.offset=3"],
                         cwd=ROOT)
    assert out.returncode == 0 and "offset: 3" in out.stdout


def test_classes_import_prints_config(tmp_path):
    txt = tmp_path / "classes.txt"
    txt.write_text("# Birds\nAmerican Robin,AMRO\nNoise,Noise\n")
    out = procs.run([sys.executable, "-m", "stages.classes", "import", str(txt)], cwd=ROOT)
    assert out.returncode == 0
    assert yaml.safe_load(out.stdout) == {"AMRO": {"name": "American Robin", "sources": []},
                                          "Noise": {"name": "Noise", "sources": []}}


def test_a_group_choice_by_hand_replaces_that_group_as_dvc_exp_run_does(monkeypatch):
    from stages._cli import load_config, parser

    monkeypatch.chdir(ROOT)
    args = parser(None).parse_args(["embedder=checkpoint", "embedder.path=x.ckpt", "engine=ray",
                                    "engine.address=auto", "infer.min_score=0.5"])
    cfg = OmegaConf.to_container(load_config(args), resolve=True)
    assert cfg["embedder"] == {**composed("embedder=checkpoint")["embedder"], "path": "x.ckpt"}
    assert "threads" not in cfg["embedder"]  # birdnet's options are gone, not merged in
    assert cfg["engine"]["name"] == "ray" and cfg["engine"]["address"] == "auto" and cfg["infer"]["min_score"] == 0.5
    assert cfg["paths"] == composed()["paths"]  # the rest is params.yaml as it was

