"""Every numeric option of every `vla` subcommand is range-checked at parse time: argparse names the
option and exits 2 before anything runs or any file is created."""

from __future__ import annotations

import argparse
import math

import pytest

from vla.cli import build_parser, main
from vla.cli.types import FloatRange, IntRange


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def _numeric_options() -> list[tuple[str, argparse.Action]]:
    """(subcommand, action) for each option that takes a number: a plain int/float type or a range type."""
    return [(name, action) for name, sub in _subparsers().items() for action in sub._actions
            if action.type in (int, float) or isinstance(action.type, (IntRange, FloatRange))]


NUMERIC_OPTIONS = _numeric_options()
IDS = [f"{name} {action.option_strings[0]}" for name, action in NUMERIC_OPTIONS]


def _outside(kind) -> list[str]:
    """Values just outside the range `kind` accepts."""
    if isinstance(kind, IntRange):
        return [str(kind.low - 1)] + ([] if kind.high is None else [str(kind.high + 1)])
    below = [repr(kind.low if kind.low_open else kind.low - 1)]
    above = [repr(kind.high if kind.high_open else kind.high + 1)] if math.isfinite(kind.high) else []
    return below + above + ["nan", "inf", "-inf"]


def test_there_are_numeric_options_to_check():
    assert len(NUMERIC_OPTIONS) > 40


@pytest.mark.parametrize(("command", "action"), NUMERIC_OPTIONS, ids=IDS)
def test_every_numeric_option_is_range_checked(command, action, capsys):
    assert isinstance(action.type, (IntRange, FloatRange)), f"vla {command} {action.option_strings[0]}: no range"
    option = action.option_strings[0]
    for value in _outside(action.type):
        with pytest.raises(SystemExit) as exit_info:
            build_parser().parse_args([command, f"{option}={value}"])
        assert exit_info.value.code == 2
        assert f"vla {command}: error: argument {option}: must be" in capsys.readouterr().err, value


@pytest.mark.parametrize(("command", "action"), NUMERIC_OPTIONS, ids=IDS)
def test_defaults_pass_their_own_range(command, action):
    if action.default is not None:
        assert action.type(str(action.default)) == action.default


def test_serve_refuses_a_port_beyond_65535(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["serve", "--policy", "hold", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "argument --port: must be an integer in [0, 65535], got 70000" in capsys.readouterr().err


def test_robot_refuses_negative_steps_with_a_message(capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["robot", "--server", "127.0.0.1:50051", "--steps", "-5"])
    assert exit_info.value.code == 2
    assert "argument --steps: must be an integer >= 1, got -5" in capsys.readouterr().err


def test_train_refuses_negative_steps_and_creates_no_checkpoint_directory(tmp_path, capsys):
    out = tmp_path / "neg"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(tmp_path / "none.hdf5"), "--out", str(out), "--steps", "-5", "--quiet"])
    assert exit_info.value.code == 2
    assert "argument --steps" in capsys.readouterr().err
    assert not out.exists()


def test_collect_refuses_negative_workers_and_creates_no_file(tmp_path, capsys):
    out = tmp_path / "demos.hdf5"
    with pytest.raises(SystemExit) as exit_info:
        main(["collect", "--task", "lift", "--episodes", "1", "--out", str(out), "--workers", "-2", "--quiet"])
    assert exit_info.value.code == 2
    assert "argument --workers: must be an integer in [1, 64], got -2" in capsys.readouterr().err
    assert not out.exists()
