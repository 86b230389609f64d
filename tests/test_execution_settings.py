"""A checkpoint carries how it runs best (execution.json); flags override it, one setting at a time."""

import json

import pytest

from policies.execution import EXECUTION_FILE, ExecutionSettings
from sim.policy_loader import DEFAULT_CHECKPOINT, PolicyOptions, checkpoint_execution
from vla.cli import build_parser
from vla.cli.train import store_execution_settings
from vla.cli.options import policy_options


def test_settings_round_trip_and_a_directory_without_them_has_the_defaults(tmp_path):
    assert ExecutionSettings.load(tmp_path) == ExecutionSettings()
    settings = ExecutionSettings(ensemble=True, ensemble_decay=-0.5, readout="mean", plan_every=4)
    settings.save(tmp_path)
    assert ExecutionSettings.load(tmp_path) == settings


@pytest.mark.parametrize("content, message", [("{", "is corrupt"), ('{"ensembel": true}', "unknown settings ensembel"),
                                              ("[1]", "unknown settings"), ('{"readout": "max"}', "readout")])
def test_bad_settings_files_are_one_error_naming_the_file(tmp_path, content, message):
    (tmp_path / EXECUTION_FILE).write_text(content)
    with pytest.raises(ValueError, match=message):
        ExecutionSettings.load(tmp_path)


def test_the_shipped_default_runs_ensembled_unless_a_flag_says_otherwise():
    assert checkpoint_execution("default", PolicyOptions()) == ExecutionSettings(ensemble=True)
    assert checkpoint_execution("default", PolicyOptions(ensemble=False)) == ExecutionSettings()
    flat_mean = checkpoint_execution(str(DEFAULT_CHECKPOINT), PolicyOptions(flat=True, readout="mean"))
    assert flat_mean == ExecutionSettings(flat=True, ensemble=True, readout="mean")
    assert checkpoint_execution("hold", PolicyOptions()) is None


@pytest.mark.parametrize("flags, overrides", [([], {}), (["--no-ensemble"], {"ensemble": False}),
                                              (["--ensemble", "--flat"], {"ensemble": True, "flat": True}),
                                              (["--readout", "mean", "--plan-every", "4"],
                                               {"readout": "mean", "plan_every": 4})])
def test_only_the_flags_given_override(flags, overrides):
    args = build_parser().parse_args(["eval", "--task", "lift", "--policy", "default", *flags])
    assert policy_options(args).overrides() == overrides


def test_training_stores_the_settings_of_the_checkpoint_it_started_from(tmp_path):
    init, out = tmp_path / "init", tmp_path / "out"
    (out / "snapshots" / "step_000010").mkdir(parents=True)
    init.mkdir()
    ExecutionSettings(ensemble=True, ensemble_decay=0.3).save(init)
    store_execution_settings(str(out), init)
    for directory in (out, out / "snapshots" / "step_000010"):
        assert ExecutionSettings.load(directory) == ExecutionSettings(ensemble=True, ensemble_decay=0.3)
    (out / EXECUTION_FILE).write_text(json.dumps({"readout": "mean"}))  # edited by hand, then --resume
    store_execution_settings(str(out), None)
    assert ExecutionSettings.load(out) == ExecutionSettings(readout="mean")


def test_a_run_without_init_gets_the_defaults(tmp_path):
    store_execution_settings(str(tmp_path), None)
    assert ExecutionSettings.load(tmp_path) == ExecutionSettings()
    assert (tmp_path / EXECUTION_FILE).is_file()


def test_describe_says_what_runs():
    assert ExecutionSettings(ensemble=True).describe() == \
        "hierarchical (planner every 8 steps), temporal ensembling (decay 0.1), argmax readout"
    assert ExecutionSettings(flat=True, execute_steps=2, gripper_latch=True).describe() == \
        "flat, execute 2 of each chunk, argmax readout, gripper latch"


@pytest.mark.parametrize("flags, named", [(["--chunk-size", "4"], "data.chunk_size"),
                                          (["--object-loss", "1", "--coord-conv"], "tiny.coordinate_channels, tiny.object_loss")])
def test_init_refuses_model_options_it_cannot_honour(tmp_path, capsys, flags, named):
    from vla.cli import main

    out = tmp_path / "ft"
    assert main(["train", "--data", str(tmp_path / "d.hdf5"), "--out", str(out), "--init", "default", *flags]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"vla train: error: {named}: ") and "keeps that checkpoint's model and data options" in error
    assert not out.exists()
