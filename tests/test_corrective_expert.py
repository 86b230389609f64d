"""The state-feedback expert: succeeds on its own, takes over from states a learner drove into,
and labels a learner's rollouts (`vla collect --learner`, DAgger)."""

import dataclasses

import h5py
import numpy as np
import pytest

from policies.base import ActionChunk
from sim.dataset import open_dataset
from sim.episode import Episode
from sim.experts.corrective import CorrectiveExpert
from sim.experts.scripted import ExpertConfig, ScriptedExpert
from sim.rollout import run_episode
from sim.takeover import TakeoverRule
from sim.tasks import COLORS, TASKS
from vla.cli import main


class HandOver:
    """The learner drives for `steps` steps, then the expert, which has watched every step (as
    it does when labelling) and never been reset since the episode began."""

    def __init__(self, learner, expert, steps: int):
        self.learner, self.expert, self.steps = learner, expert, steps

    def reset(self, instruction: str = "") -> None:
        self.learner.reset(instruction)
        self.expert.reset(instruction)
        self.t = 0

    def act(self, observation) -> ActionChunk:
        label = self.expert.act(observation)
        chunk = self.learner.act(observation) if self.t < self.steps else label
        self.t += 1
        return chunk


class ShutGripper:
    """Stays where it is with the fingers closed on nothing."""

    def __init__(self, env):
        self.expert = CorrectiveExpert(env)

    def reset(self, instruction: str = "") -> None:
        pass

    def act(self, observation) -> ActionChunk:
        return ActionChunk(np.append(self.expert.scene.joint_positions(), 1.0)[None], subtask="grasp")


class WrongGoal:
    """The env as a learner that misread the instruction sees it: another cube is the target."""

    def __init__(self, env):
        self.env = env

    def __getattr__(self, name):
        return getattr(self.env, name)

    @property
    def goal(self):
        goal = self.env.goal
        other = next(c for c in COLORS if c not in (goal.target, goal.base))
        return dataclasses.replace(goal, target=other)


def _run(env, policy, seed: int):
    result = run_episode(env, policy, seed)
    assert result.success, f"{env.task.name} seed {seed} failed after {result.steps} steps: {_phases(result.subtasks)}"
    return result


def _phases(subtasks: list[str]) -> list[str]:
    return [s for i, s in enumerate(subtasks) if i == 0 or subtasks[i - 1] != s]


@pytest.mark.parametrize("task_name", [name for name, spec in TASKS.items()
                                       if name != "push-color" and not spec.long_horizon])
def test_succeeds_from_reset_with_the_scripted_experts_labels(env_cache, task_name):
    env = env_cache(task_name)
    result = _run(env, CorrectiveExpert(env), seed=21)
    phases = _phases(result.subtasks)
    assert phases[:2] == [f"reach the {env.goal.target} cube", "grasp"]
    assert phases[-1] == ("release" if env.goal.base else "lift")


@pytest.mark.parametrize("task_name", ["stack", "crate-three"])
def test_labels_the_scripted_experts_own_states_as_the_scripted_expert_does(env_cache, task_name):
    """DAgger's labels continue the demonstrations: where the scripted expert drives, the corrective expert
    names the same subtask and commands the same joints and gripper at every step."""
    env = env_cache(task_name)
    config = ExpertConfig(align_yaw=False)  # as `vla collect --expert-yaw fixed` records them
    obs, _ = env.reset(seed=2)
    driver, labeller = ScriptedExpert(env, config), CorrectiveExpert(env, config)
    driver.reset()
    labeller.reset()
    differing = []
    for step in range(env.max_steps):
        drive, label = driver.act(obs), labeller.act(obs)
        if drive.subtask != label.subtask or not np.allclose(drive.actions, label.actions, atol=1e-4):
            differing.append((step, drive.subtask, label.subtask, float(np.abs(drive.actions - label.actions).max())))
        obs, _, done, truncated, _ = env.step(drive.actions[0])
        if done or truncated:
            break
    assert env.is_success()
    assert differing == []


def test_refuses_push_goals_naming_how_to_collect_them(env_cache):
    env = env_cache("push-color")
    env.reset(seed=1)
    with pytest.raises(ValueError, match="push.*scripted expert or `vla teleop`"):
        CorrectiveExpert(env).reset()


def test_reopens_fingers_that_shut_on_nothing(env_cache):
    env = env_cache("lift")
    result = _run(env, HandOver(ShutGripper(env), CorrectiveExpert(env), steps=15), seed=22)
    assert result.subtasks[15] == "reach the red cube"


def test_approaches_again_after_a_grasp_beside_the_cube(env_cache):
    env = env_cache("lift")
    learner = CorrectiveExpert(env)
    true_pos = learner.scene.cube_pos
    learner.scene.cube_pos = lambda color: true_pos(color) + [0.035, 0.0, 0.0]  # aims 3.5 cm off
    result = _run(env, HandOver(learner, CorrectiveExpert(env), steps=45), seed=23)
    assert "grasp" in result.subtasks[:45], "the learner should have tried its grasp before the hand-over"
    assert "reach the red cube" in result.subtasks[45:]


def test_lets_go_of_the_wrong_cube_and_places_the_right_one(env_cache):
    env = env_cache("place-color")
    learner = CorrectiveExpert(env)
    learner.env = WrongGoal(env)
    result = _run(env, HandOver(learner, CorrectiveExpert(env), steps=60), seed=24)
    assert "lift" in result.subtasks[:60], "the learner should have lifted the wrong cube"
    assert result.subtasks[60] == f"reach the {env.goal.target} cube"


@pytest.fixture(scope="module")
def dagger_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("dagger") / "lift.hdf5"
    args = ["collect", "--task", "lift", "--episodes", "2", "--seed", "30", "--learner", "hold", "--expert-yaw",
            "fixed", "--image-size", "48", "--quiet", "--out", str(out)]
    assert main(args) == 0
    return out


def test_collect_with_a_learner_keeps_its_episodes_with_the_experts_labels(dagger_dataset, capsys):
    info = open_dataset(dagger_dataset)
    assert info.demo_names == ("demo_0", "demo_1")
    with h5py.File(dagger_dataset, "r") as f:
        assert f["data"].attrs["env_args"] and "learner" in f["data"].attrs["env_args"]
        demo = f["data/demo_0"]
        assert demo.attrs["driven_by"] == "hold" and not demo.attrs["success"]
        assert demo.attrs["num_samples"] == 150  # the hold policy never lifts: the whole step limit
        joints = demo["obs/robot0_joint_pos"][()]
        labels = demo["actions"][()]
        assert np.abs(joints - joints[0]).max() < 0.02, "the learner (hold) drove, so the arm stayed put"
        assert np.abs(labels[-1, :7] - joints[-1]).max() > 0.05, "the labels should head for the cube"
        assert set(demo["subtasks"].asstr()[()]) == {"reach the red cube"}


def test_replaying_a_learners_episode_as_actions_is_refused(dagger_dataset, capsys):
    assert main(["replay", str(dagger_dataset), "--quiet"]) == 2
    assert "--mode states" in capsys.readouterr().err


def test_collect_refuses_policy_options_without_a_learner(tmp_path, capsys):
    out = tmp_path / "x.hdf5"
    assert main(["collect", "--task", "lift", "--episodes", "1", "--ensemble", "--out", str(out)]) == 2
    assert "--learner" in capsys.readouterr().err and not out.exists()


def test_takeover_waits_for_a_stuck_learner_then_lets_the_expert_drive_then_hands_back():
    tracker = TakeoverRule(stuck_steps=3, drive_steps=2).tracker()
    getting_on = [tracker.expert_drives(label) for label in ("reach", "reach", "grasp", "grasp", "lift")]
    stuck = [tracker.expert_drives("lower") for _ in range(9)]
    assert not any(getting_on)
    # the stretch's first "lower" and three more hand over: the expert drives 2 steps, then the learner gets
    # a fresh stretch of 1 + 3 steps
    assert stuck == [False, False, False, True, True, False, False, False, True]
    attrs = tracker.attrs()
    assert (attrs["takeovers"], attrs["expert_driven_steps"]) == (2, 3)
    assert attrs["expert_driven_spans"].tolist() == [[8, 10], [13, 14]]  # frames 5-13 are the stuck ones
    with pytest.raises(ValueError, match="--takeover"):
        TakeoverRule(stuck_steps=0)


def test_collect_with_takeover_lets_the_expert_finish_what_a_stuck_learner_cannot(tmp_path):
    out = tmp_path / "takeover.hdf5"
    assert main(["collect", "--task", "lift", "--episodes", "1", "--seed", "30", "--learner", "hold", "--takeover",
                 "10", "--expert-yaw", "fixed", "--image-size", "48", "--quiet", "--out", str(out)]) == 0
    with h5py.File(out, "r") as f:
        demo = f["data/demo_0"]
        assert demo.attrs["driven_by"] == "hold"
        assert demo.attrs["success"], "the expert, driving whenever the hold policy got stuck, lifts the cube"
        # the hold policy stayed in "reach" for its first 10 steps, then the expert drove to the end in one takeover
        assert demo.attrs["takeovers"] == 1
        assert demo.attrs["num_samples"] == 10 + demo.attrs["expert_driven_steps"] < 150
        assert demo.attrs["expert_driven_spans"].tolist() == [[10, int(demo.attrs["num_samples"])]]
        assert "takeover" in f["data"].attrs["env_args"]


def test_takeover_only_keeps_the_stretches_the_expert_drove_as_demos_of_their_own(tmp_path):
    args = ["collect", "--task", "lift", "--episodes", "1", "--seed", "30", "--learner", "hold", "--takeover", "10",
            "--expert-yaw", "fixed", "--image-size", "48", "--quiet"]
    whole, stretches = tmp_path / "whole.hdf5", tmp_path / "stretches.hdf5"
    assert main(args + ["--out", str(whole)]) == 0
    assert main(args + ["--takeover-only", "--out", str(stretches)]) == 0
    with h5py.File(whole, "r") as f, h5py.File(stretches, "r") as g:
        learner_run, kept = f["data/demo_0"], g["data/demo_0"]
        assert list(g["data"]) == ["demo_0"], "one takeover, one demo"
        start, end = kept.attrs["source_frames"]
        assert (start, end) == (10, learner_run.attrs["num_samples"])  # the hold policy's 10 frames are left out
        np.testing.assert_array_equal(kept["actions"][()], learner_run["actions"][start:end])
        np.testing.assert_array_equal(kept["states"][()], learner_run["states"][start:end])
        np.testing.assert_array_equal(kept["obs/agentview_image"][()], learner_run["obs/agentview_image"][start:end])
        assert kept.attrs["success"] and kept.attrs["expert_driven_spans"].tolist() == [[0, end - start]]


def test_takeover_only_with_no_takeover_is_a_clear_error_and_leaves_no_file(tmp_path, capsys):
    out = tmp_path / "stretches.hdf5"
    code = main(["collect", "--task", "lift", "--episodes", "1", "--seed", "30", "--learner", "hold", "--takeover",
                 "1000", "--takeover-only", "--expert-yaw", "fixed", "--image-size", "48", "--quiet",
                 "--out", str(out)])  # lift ends long before the hold policy has been stuck for 1000 steps
    assert code != 0
    err = capsys.readouterr().err
    assert "the expert never took over in 1 episodes of hold" in err and "smaller --takeover than 1000" in err
    assert not out.exists()


def test_an_episodes_frames_are_checked_against_its_length():
    with pytest.raises(ValueError, match="not inside an episode of"):
        Episode(seed=0, instruction="", goal={}, actions=np.zeros((3, 8)), observations={}, states=np.zeros((3, 4)),
                rewards=np.zeros(3), dones=np.zeros(3), subtasks=[""] * 3, model_file="", success=True).frames(2, 4)


def test_collect_refuses_takeover_only_without_takeover(tmp_path, capsys):
    out = tmp_path / "x.hdf5"
    assert main(["collect", "--task", "lift", "--episodes", "1", "--learner", "hold", "--takeover-only",
                 "--out", str(out)]) == 2
    assert "--takeover STEPS" in capsys.readouterr().err and not out.exists()


def test_collect_refuses_takeover_without_a_learner(tmp_path, capsys):
    out = tmp_path / "x.hdf5"
    assert main(["collect", "--task", "lift", "--episodes", "1", "--takeover", "10", "--out", str(out)]) == 2
    assert "--learner" in capsys.readouterr().err and not out.exists()
