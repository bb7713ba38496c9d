"""Every training setting is reachable from a file, a flag or --set, typed; anything else is refused in one line."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from radpath.train.cli import cmd_train
from radpath.train.config import ConfigError, TrainConfig, field_types

ROOT = Path(__file__).resolve().parents[2]


def test_set_reaches_every_field_with_its_type():
    base = TrainConfig()
    text = {
        int: "7",
        float: "0.25",
        bool: "true",
    }
    for name, tp in field_types().items():
        if name == "stages":
            got = base.with_settings(["stages=1,2,3,4"])
            assert got.stages == (1, 2, 3, 4)
        elif name == "init_weights":
            assert base.with_settings(["init_weights=w.npz"]).init_weights == "w.npz"
            assert base.with_settings(["init_weights=none"]).init_weights is None
        elif name == "region_pool":  # needs the segmentation head
            assert base.with_settings(["seg_weight=1", "region_pool=true"]).region_pool is True
        elif name == "region_dark":  # needs the region statistics
            assert base.with_settings(["seg_weight=1", "region_pool=true", "region_dark=true"]).region_dark is True
        elif name == "region_location":  # needs the region statistics
            got = base.with_settings(["seg_weight=1", "region_pool=true", "region_location=true"])
            assert got.region_location is True
        elif name == "region_specks":  # needs the region statistics
            got = base.with_settings(["seg_weight=1", "region_pool=true", "region_specks=true"])
            assert got.region_specks is True
        elif name == "age_prior_init":  # needs the age input
            assert base.with_settings(["use_age=true", "age_prior_init=true"]).age_prior_init is True
        elif name == "slice_offsets":
            got = base.with_settings(["slice_offsets=-6,-3,-1,0,1,3,6"])
            assert got.slice_offsets == (-6, -3, -1, 0, 1, 3, 6)
        elif tp is str:  # settings with a fixed set of choices
            choice = {"resnet_variant": "torchvision", "compute_dtype": "bfloat16"}[name]
            assert getattr(base.with_settings([f"{name}={choice}"]), name) == choice
        else:
            value = base.with_settings([f"{name}={text[tp]}"])
            assert getattr(value, name) == tp(json.loads(text[tp])) and type(getattr(value, name)) is tp, name


@pytest.mark.parametrize(
    "pair, message",
    [
        ("nonsense=1", "unknown training setting 'nonsense'"),
        ("epochs=many", "epochs must be int"),
        ("use_age=maybe", "use_age must be bool"),
        ("epochs", "expected key=value"),
        ("epochs=0", "epochs must be at least 1"),
        ("label_smoothing=1.5", "label_smoothing must be in [0, 1)"),
        ("stages=3,0,6,3", "stages must be positive"),
        ("resnet_variant=resnet", "resnet_variant must be one of flax, torchvision, keras"),
        ("compute_dtype=float16", "compute_dtype must be one of float32, bfloat16"),
        ("slice_offsets=-2,0,2", "slice_offsets must be distinct and hold -1, 0 and 1"),
        ("slice_offsets=-1,0,1,1", "slice_offsets must be distinct"),
        ("slice_offsets=-30,-1,0,1", "slice_offsets reach at most 20 slices"),
        ("feature_dropout=1", "feature_dropout must be in [0, 1)"),
    ],
)
def test_bad_settings_are_refused_in_one_line(pair, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as exc:
        TrainConfig().with_settings([pair])
    assert "\n" not in str(exc.value)


def test_config_file_is_typed_and_round_trips(tmp_path):
    cfg = TrainConfig(width=4, stages=(1, 1, 1, 1), epochs=3, use_age=True)
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    assert TrainConfig.from_file(path) == cfg
    path.write_text(json.dumps({"width": "8"}))
    with pytest.raises(ConfigError, match='width must be int, got "8"'):
        TrainConfig.from_file(path)
    path.write_text(json.dumps({"widht": 8}))
    with pytest.raises(ConfigError, match=r"unknown training setting\(s\) \['widht'\]"):
        TrainConfig.from_file(path)
    path.write_text(json.dumps({"_comment": "documents the file", "learning_rate": 1}))
    assert TrainConfig.from_file(path).learning_rate == 1.0  # an int is a fine float
    with pytest.raises(ConfigError, match="no such configuration file"):
        TrainConfig.from_file(tmp_path / "missing.json")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.json")), ids=lambda p: p.name)
def test_named_configurations_load(path):
    TrainConfig.from_file(path)


def test_cli_precedence_file_then_flags_then_set(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"width": 4, "epochs": 5, "seed": 3}))
    from radpath.cli import build_parser

    args = build_parser("train").parse_args(
        ["train", "cohort", "--config", str(path), "--epochs", "6", "--set", "seed=9", "--show-config"]
    )
    assert cmd_train(args) == 0
    got = json.loads(capsys.readouterr().out)
    assert (got["width"], got["epochs"], got["seed"]) == (4, 6, 9)


def test_cli_refuses_a_bad_setting_in_one_line(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "radpath", "train", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "epochs=x"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 1
    assert out.stderr.strip().count("\n") == 0 and "epochs must be int" in out.stderr


def test_the_model_card_names_the_recipe_levers():
    """A reader of the card sees the regularisation and the region statistics the model was trained with."""
    from dataclasses import asdict

    from radpath.train.run import _architecture

    plain = _architecture(asdict(TrainConfig()))
    assert "dropout" not in plain and "age weights" not in plain and "statistics" not in plain
    cfg = TrainConfig().with_settings(
        ["seg_weight=1", "region_pool=true", "region_dark=true", "feature_dropout=0.5", "use_age=true"]
        + ["age_prior_init=true"]
    )
    text = _architecture(asdict(cfg))
    assert "dropout 0.5 on the pooled image features" in text and "share of pixels darker than the brain" in text
    assert "age weights started from the age-only logistic regression" in text
