"""params.yaml must be exactly what conf/ composes to, and every entry point must explain itself."""

import sys

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from hawk.classes import parse_classes
from hawk.download.run import DownloadOptions
from hawk.spectrogram import SpecSettings
from hawk.training.run import TrainSettings, TrainerSettings
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
    # the library's defaults are conf's (a benchmark or test calling hawk directly gets what a user gets)
    assert SpecSettings.from_mapping(cfg["audio"]) == SpecSettings()
    assert TrainSettings.from_mapping(cfg["train"]) == TrainSettings()
    assert TrainerSettings(**cfg["trainer"]) == TrainerSettings()
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



# --- the typed schema (hawk/schema.py) ---------------------------------------------------------
def _leaves(node, prefix=""):
    for k, v in node.items():
        if isinstance(v, dict) and k not in ("classes", "queries", "calls"):
            yield from _leaves(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _set(cfg, path, value):
    import copy

    out = copy.deepcopy(cfg)
    node = out
    *parents, last = path.split(".")
    for p in parents:
        node = node[p]
    node[last] = value
    return out


def _every_option():
    """The composition with each option of each group that has alternatives (embedder, engine)."""
    yield composed()
    for group in ("embedder", "engine"):
        for option in sorted((ROOT / "conf" / group).glob("*.yaml")):
            yield composed(f"{group}={option.stem}")


def test_schema_declares_exactly_the_keys_conf_composes():
    from hawk.schema import schema_keys

    composed_keys = set()
    for cfg in _every_option():
        composed_keys |= {k for k, _ in _leaves(cfg)} | {k.rsplit(".", 1)[0] for k, _ in _leaves(cfg) if "." in k}
    composed_keys = {k for k in composed_keys if not k.startswith(("classes.", "search.queries.", "testset.calls."))}
    assert schema_keys() == composed_keys


def test_every_option_of_conf_passes_the_schema():
    from hawk.schema import validate

    for cfg in _every_option():
        validate(cfg)
    for preset in (ROOT / "conf" / "experiment").glob("*.yaml"):
        validate(composed(f"experiment={preset.stem}"))


def test_every_key_refuses_a_wrong_type_naming_key_and_value():
    """Walk every leaf of every option: a value of the wrong type fails, in a message naming both."""
    from hawk.schema import ConfigError, validate

    tried = 0
    for cfg in _every_option():
        for path, value in _leaves(cfg):
            if path in ("classes", "search.queries"):
                continue  # free-form here, validated by hawk.classes and the search stage
            wrong = {"wrong": 1} if isinstance(value, str) or value is None else "not-a-value"
            if isinstance(value, list):
                wrong = "not-a-list"
            with pytest.raises(ConfigError) as e:
                validate(_set(cfg, path, wrong))
            assert path in str(e.value) and repr(wrong) in str(e.value), (path, str(e.value))
            tried += 1
    assert tried > 150


@pytest.mark.parametrize("override, allowed", [
    ("audio.offset=-1", "must be a number > 0"), ("audio.offset=0", "must be a number > 0"),
    ("audio.offset=abc", "must be a number"), ("train.batch_size=0", ">= 1"), ("train.batch_size=-4", ">= 1"),
    ("train.num_epochs=abc", "a whole number"), ("train.num_epochs=-1", ">= 1"), ("train.num_epochs=0", ">= 1"),
    ("download.max_per_class=-5", ">= 0"), ("download.max_per_class=abc", "a whole number"),
    ("dedup.mode=delete", "one of 'report', 'remove'"), ("train.num_workers=some", "or 'auto'"),
])
def test_a_bad_setting_is_one_line_before_any_work(override, allowed, tmp_path):
    key, value = override.split("=")
    out = procs.run([sys.executable, "-m", "stages.extract", "--code", "RIWH", override], cwd=ROOT)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: setting {key}=") and value in lines[0], lines
    assert allowed in lines[0], lines[0]
    assert "extract" not in out.stdout  # no work started


def test_a_mistyped_key_inside_a_class_is_refused():
    from hawk.classes import ClassConfigError

    with pytest.raises(ClassConfigError, match=r"class 'AMRO': unknown key\(s\) max_recordigns"):
        parse_classes({"AMRO": {"name": "American Robin", "max_recordigns": 5, "sources": []}})


def test_every_preset_names_itself_for_tracking():
    assert composed()["tracking"]["preset"] is None
    for preset in (ROOT / "conf" / "experiment").glob("*.yaml"):
        assert composed(f"experiment={preset.stem}")["tracking"]["preset"] == preset.stem
