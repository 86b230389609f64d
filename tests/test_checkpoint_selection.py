"""`vla select`: snapshots of a run ranked by closed-loop success."""

import json
import shutil

import pytest

from sim.checkpoint_selection import list_snapshots, select_checkpoint
from sim.policy_loader import DEFAULT_CHECKPOINT
from vla.cli import main


def _fake_run(tmp_path, names):
    for name in names:
        (tmp_path / "snapshots" / name).mkdir(parents=True)
        (tmp_path / "snapshots" / name / "config.json").write_text("{}")
    return tmp_path


def test_snapshots_are_listed_by_step_and_incomplete_ones_skipped(tmp_path):
    run = _fake_run(tmp_path, ["step_001000", "step_000250-ema", "step_000250", "notes"])
    (run / "snapshots" / "step_000500").mkdir()  # interrupted while saving: no config.json
    assert [p.name for p in list_snapshots(run)] == ["step_000250", "step_000250-ema", "step_001000"]


@pytest.mark.parametrize("successes,best", [
    ({"step_000250": 3, "step_000500": 7, "step_000500-ema": 5, "step_000750": 6}, "step_000500"),
    ({"step_000250": 7, "step_000500": 2, "step_000500-ema": 7, "step_000750": 7}, "step_000750"),
    ({"step_000250": 0, "step_000500": 4, "step_000500-ema": 4, "step_000750": 1}, "step_000500"),
])
def test_the_most_successes_win_then_the_later_step_then_raw_weights(tmp_path, successes, best):
    run = _fake_run(tmp_path, list(successes))
    calls = []

    def successes_of(snapshot, task):
        calls.append((snapshot.name, task))
        return successes[snapshot.name] if task == "lift" else 1

    report = select_checkpoint(list_snapshots(run), ["lift", "stack"], 10, successes_of)
    assert len(calls) == 8 and report["best"].endswith(best)
    row = report["rows"][1]
    assert row["successes"] == {"lift": successes["step_000500"], "stack": 1}
    assert row["successes_total"] == successes["step_000500"] + 1 and row["success_rate"] == row["successes_total"] / 20
    assert 0 <= row["ci95"][0] <= row["success_rate"] <= row["ci95"][1] <= 1


def test_a_run_without_snapshots_is_a_clear_error(tmp_path, capsys):
    assert main(["select", "--run", str(tmp_path), "--task", "lift"]) == 2
    assert "--snapshot-every" in capsys.readouterr().err
    _fake_run(tmp_path, ["step_000250"])
    assert main(["select", "--run", str(tmp_path), "--task", "lift", "--snapshot", "step_000999"]) == 2
    error = capsys.readouterr().err
    assert "no snapshot step_000999" in error and "there are: step_000250" in error


def test_select_evaluates_each_snapshot_on_the_same_seeds(tmp_path, capsys):
    for name in ("step_000100", "step_000100-ema", "step_000200"):
        shutil.copytree(DEFAULT_CHECKPOINT, tmp_path / "snapshots" / name)
    out = tmp_path / "select.json"
    assert main(["select", "--run", str(tmp_path), "--task", "lift", "--snapshot", "step_000100",
                 "--snapshot", "step_000100-ema", "--episodes", "1", "--seed", "100004", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert [row["step"] for row in report["rows"]] == [100, 100] and [r["ema"] for r in report["rows"]] == [False, True]
    same_weights = [row["successes"]["lift"] for row in report["rows"]]
    assert same_weights[0] == same_weights[1]  # the same checkpoint on the same seed ends the same way
    assert report["best"].endswith("step_000100") and report["seed"] == 100004
    assert "best:" in capsys.readouterr().out
