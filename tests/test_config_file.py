"""Config files: TOML into the settings tree, errors that name the key or line."""

from __future__ import annotations

import dataclasses

import pytest

from hybridver import defaults
from hybridver.config import Event, Mode, Schedule, StageName, VerifyConfig
from hybridver.config_file import ConfigError, config_from_dict, load_config


def test_a_file_sets_nested_settings_and_keeps_the_rest(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text("""
timeout_s = 42
mode = "exact"
[input_split]
batch_size = 64
[activation_split.alpha]
iterations = 5
[exact]
backend = "z3"
[schedule]
stages = ["sampling", "whole_box"]
escalations = [{event = "handoff", after_s = 0.5}]
""")
    config = load_config(path)
    assert config.timeout_s == 42.0 and config.mode is Mode.EXACT
    assert config.input_split.batch_size == 64
    assert config.input_split.max_domains == VerifyConfig().input_split.max_domains
    assert config.activation_split.alpha.iterations == 5
    assert config.exact.backend == "z3"
    assert config.schedule.stages == (StageName.SAMPLING, StageName.WHOLE_BOX)
    assert config.schedule.after(Event.HANDOFF) == 0.5
    assert config.schedule.after(Event.REGION_RACE) is None
    assert config.attack == VerifyConfig().attack


@pytest.mark.parametrize("data, words", [
    ({"timeout": 3}, ["unknown setting 'timeout'", "timeout_s"]),
    ({"input_split": {"batch": 3}}, ["input_split.batch"]),
    ({"input_split": {"batch_size": "many"}}, ["input_split.batch_size", "integer"]),
    ({"mode": "fast"}, ["'mode'", "'hybrid'"]),
    ({"schedule": {"stages": ["nope"]}}, ["schedule.stages[0]"]),
    ({"attack": 3}, ["'attack' must be a table"]),
    ({"timeout_s": -1}, ["timeout_s"]),
    ({"activation_split": {"probe_domains": 0}}, ["activation_split", "probe_domains"]),
    ({"activation_split": {"probe_every": -1}}, ["activation_split", "probe_every"]),
])
def test_bad_settings_name_the_key(data, words):
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, "f.toml")
    assert all(w in str(info.value) for w in words), str(info.value)


def test_syntax_errors_give_the_line(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("timeout_s = 3\n[attack\n")
    with pytest.raises(ConfigError, match=r"bad.toml: .*line 2"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_the_modes_the_command_line_offers_are_the_config_modes():
    assert defaults.MODES == tuple(m.value for m in Mode)


def test_schedule_edits():
    schedule = Schedule().at(Event.HANDOFF, 0.0).without(Event.FACE_ATTACK)
    assert schedule.after(Event.HANDOFF) == 0.0 and schedule.after(Event.FACE_ATTACK) is None
    assert dataclasses.replace(VerifyConfig(), mode=Mode.EXACT).stages == (StageName.EXACT,)
    workers = VerifyConfig().with_workers(3).schedule
    assert workers.handoff_workers == workers.region_race_workers == 3


def test_the_scheduler_learning_switch_and_model_path(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(f"""
[scheduler]
learning = false
model_path = "{tmp_path / 'model.json'}"
[scheduler.learned]
min_observations = 8
""")
    config = load_config(path)
    assert config.scheduler.learning is False
    assert config.scheduler.model_path == str(tmp_path / "model.json")
    assert config.scheduler.learned.min_observations == 8.0
    assert VerifyConfig().scheduler.learning is True
    no_file = config_from_dict({"scheduler": {"model_path": ""}})
    assert no_file.scheduler.model_path == ""


def test_a_table_keeps_the_enclosing_defaults_of_the_keys_it_leaves_out(tmp_path):
    """VerifyConfig's input splitting batches 256 domains (InputSplitConfig's own default
    is 512): a file that sets another key of [input_split] must not change that."""
    path = tmp_path / "one_key.toml"
    path.write_text("[input_split]\nclip_domains = false\n")
    config = load_config(path)
    assert config.input_split.batch_size == VerifyConfig().input_split.batch_size == 256
    assert config.input_split.clip_domains is False
