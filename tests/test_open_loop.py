"""`replay:FILE[#DEMO]`: one demo's commands played blind, the open-loop baseline of `vla eval`."""

import json

import numpy as np
import pytest

from policies.open_loop import OpenLoopReplay
from sim.policy_loader import load_replay, parse_replay_spec
from sim.dataset import DatasetError, open_dataset, read_episode
from vla.cli import main


@pytest.fixture(scope="module")
def lift_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay") / "lift.hdf5"
    assert main(["collect", "--task", "lift", "--out", str(out), "--episodes", "1", "--seed", "7",
                 "--image-size", "48", "--quiet"]) == 0
    return out


def test_plays_the_recorded_actions_in_order_then_holds_the_last():
    actions = np.arange(12, dtype=np.float32).reshape(3, 4)
    policy = OpenLoopReplay(actions)
    policy.reset("lift the red cube")
    played = [policy.act({}).actions for _ in range(5)]
    assert all(chunk.shape == (1, 4) for chunk in played)
    np.testing.assert_array_equal(np.concatenate(played), actions[[0, 1, 2, 2, 2]])
    policy.reset("lift the red cube")
    np.testing.assert_array_equal(policy.act({}).actions[0], actions[0])


def test_spec_names_the_file_and_optionally_the_demo():
    assert parse_replay_spec("replay:data/lift.hdf5") == ("data/lift.hdf5", None)
    assert parse_replay_spec("replay:data/lift.hdf5#demo_3") == ("data/lift.hdf5", "demo_3")
    with pytest.raises(ValueError, match="name a dataset"):
        parse_replay_spec("replay:")
    with pytest.raises(ValueError, match="T >= 1"):
        OpenLoopReplay(np.zeros((0, 8)))


def test_replaying_a_demo_on_its_own_seed_succeeds_through_vla_eval(lift_demo, tmp_path):
    report_path = tmp_path / "replay.json"
    assert main(["eval", "--task", "lift", "--policy", f"replay:{lift_demo}#demo_0", "--episodes", "1",
                 "--seed", "7", "--image-size", "48", "--json", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    recorded = read_episode(lift_demo, "demo_0")
    assert open_dataset(lift_demo).env_args["demonstrator"] == "expert"  # which expert made the demos
    assert report["successes"] == 1
    assert report["episodes_detail"][0]["steps"] == len(recorded.actions)


def test_other_tasks_files_and_missing_demos_are_refused(lift_demo):
    with pytest.raises(ValueError, match="vla collect --task stack"):
        load_replay(f"replay:{lift_demo}", "stack")
    with pytest.raises(DatasetError, match="no demo 'demo_9'"):
        load_replay(f"replay:{lift_demo}#demo_9", "lift")
    assert load_replay(f"replay:{lift_demo}", None).name == "replay demo_0"
