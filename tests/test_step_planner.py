"""The step planner: a long-horizon instruction pursued one pick-and-place step at a time (sim.tasks.step_instructions,
policies/hierarchical.py), and the step instructions long-horizon demos are trained with (train.step_instructions)."""

import numpy as np
import pytest

from intervention_fakes import Controller, Planner
from policies.chunking import ChunkExecutor
from policies.hierarchical import HierarchicalPolicy
from sim.object_positions import GoalSchedule
from sim.scene_labels import frame_step_instructions
from sim.tasks import TASKS, Goal, get_task, long_horizon_goal, step_instruction, step_instructions
from vla.config import DataConfig
from vla.data import ChunkDataset, Demo
from vla.normalization import NormStats
from vla.tokenizer import ActionTokenizer

LONG_TASKS = ("stack-three", "stack-three-unseen", "crate-three", "crate-three-unseen")
OPEN, CLOSED = np.array([0.04, -0.04]), np.array([0.02, -0.02])  # finger positions: 8 cm and 4 cm apart


@pytest.mark.parametrize("task", LONG_TASKS)
def test_every_phrasing_of_every_order_decomposes_into_its_steps(task):
    spec = get_task(task)
    for goal in spec.draw_goal.every_goal():
        for template in spec.templates:
            text = template.format(**goal.template_fields())
            assert long_horizon_goal(f"  {text.capitalize()}. ") == goal
            assert step_instructions(text) == [step_instruction(step) for step in goal.steps]


def test_steps_are_said_in_the_words_of_the_one_step_tasks():
    assert step_instructions("stack the blue cube on the green cube, then the red cube on top") == [
        "put the blue cube on the green cube", "put the red cube on the blue cube"]
    assert step_instruction(Goal("red", "green")) == TASKS["place-color"].templates[0].format(target="red",
                                                                                             base="green")
    assert step_instruction(Goal("red", "bin")) == TASKS["bin-color"].templates[0].format(target="red")
    assert step_instruction(Goal("red", "crate")) == "put the red cube in the crate"


@pytest.mark.parametrize("text", ["put the red cube on the green cube", "lift the red cube", "",
                                  "stack the red cube on the red cube, then the red cube on top"])
def test_one_step_and_unknown_instructions_are_not_decomposed(text):
    assert step_instructions(text) is None


def test_each_frame_of_a_long_demo_is_labelled_with_its_step():
    tower = Goal("green", "red", then=(Goal("blue", "green"),))
    labels = frame_step_instructions(GoalSchedule(tower, np.array([0, 0, 1, 1, 1])))
    assert labels == ["put the green cube on the red cube"] * 2 + ["put the blue cube on the green cube"] * 3
    assert frame_step_instructions(Goal("green", "red")) is None


def told(controller: Controller) -> list[str]:
    return [instruction for instruction, _ in controller.seen]


TOWER = "stack the green cube on the red cube, then the blue cube on top"
STEP_1, STEP_2 = "put the green cube on the red cube", "put the blue cube on the green cube"


def _stepping_policy(planner, controller, step_planner=True):
    return HierarchicalPolicy(planner, controller, plan_every=4, executor=ChunkExecutor(4),
                              step_instructions=step_instructions if step_planner else None)


def _act(policy, fingers, subtask=None, planner=None):
    if subtask is not None:
        planner.answer = subtask
    policy.act({"robot0_gripper_qpos": fingers, "instruction": TOWER})


def test_the_controller_and_planner_are_told_one_step_at_a_time_and_move_on_after_a_release():
    planner, controller = Planner("reach the green cube"), Controller()
    policy = _stepping_policy(planner, controller)
    policy.reset(TOWER)
    _act(policy, OPEN)
    _act(policy, OPEN, "release", planner)  # a release with no cube ever held: still step 1
    _act(policy, OPEN)
    assert policy.step_instruction == STEP_1
    _act(policy, CLOSED, "grasp", planner)
    _act(policy, CLOSED, "release", planner)
    _act(policy, CLOSED)  # releasing, the fingers not open yet
    assert policy.step_instruction == STEP_1 and set(told(controller)) == {STEP_1}
    _act(policy, OPEN, "reach the blue cube", planner)  # the fingers have opened: the next step
    assert policy.step_instruction == STEP_2
    assert told(controller)[-1] == planner.instructions[-1] == STEP_2
    _act(policy, OPEN, "release", planner)
    _act(policy, OPEN)
    assert policy.step_instruction == STEP_2  # the next release must follow a grasp again


def test_the_last_step_is_kept_and_a_new_instruction_starts_from_its_first_step():
    planner, controller = Planner("reach the green cube"), Controller()
    policy = _stepping_policy(planner, controller)
    policy.reset(TOWER)
    for _ in range(3):
        _act(policy, CLOSED, "grasp", planner)
        _act(policy, CLOSED, "release", planner)
        _act(policy, OPEN)
    assert policy.step_instruction == STEP_2
    policy.intervene("put the red cube on the blue cube, and then the green cube on the red cube", "instruction")
    _act(policy, OPEN)
    assert told(controller)[-1] == "put the red cube on the blue cube"
    policy.intervene("put the blue cube on the red cube", "instruction")  # one step: pursued as it is
    _act(policy, OPEN)
    assert told(controller)[-1] == "put the blue cube on the red cube" and policy.step_instruction is None


def test_without_the_step_planner_the_whole_instruction_is_told():
    planner, controller = Planner("reach the green cube"), Controller()
    policy = _stepping_policy(planner, controller, step_planner=False)
    policy.reset(TOWER)
    _act(policy, OPEN)
    assert told(controller) == planner.instructions == [TOWER] and policy.step_instruction is None


def _demo(step_texts):
    frames = len(step_texts)
    return Demo(images=np.zeros((frames, 1, 3, 8, 8), np.uint8), states=np.zeros((frames, 2)),
                actions=np.zeros((frames, 2)), instruction=TOWER, subtasks=[""] * frames,
                step_instructions=step_texts)


def test_training_tells_the_given_share_of_long_horizon_samples_their_step():
    config = DataConfig(state_keys=("q",), action_dim=2, chunk_size=2)
    ramp = np.zeros((4, 2)) + np.arange(4)[:, None]
    stats = NormStats.compute("panda", ramp, ramp)
    dataset = ChunkDataset([_demo([STEP_1, STEP_2])], config, stats, ActionTokenizer(16, 16))
    rng = np.random.default_rng(0)
    told = [dataset.sample(1, rng, step_instructions=0.5)["instruction"] for _ in range(400)]
    assert set(told) == {TOWER, STEP_2}
    assert 0.4 < told.count(STEP_2) / len(told) < 0.6
    assert dataset.sample(1)["instruction"] == TOWER  # validation: the whole instruction
    assert {dataset.sample(0, rng)["instruction"] for _ in range(50)} == {TOWER}  # off by default


def test_a_collected_tower_is_labelled_with_its_steps_and_trains_on_them(one_demo_file, tmp_path, capsys):
    from sim.scene_labels import SIM_SCENE_LABELS
    from vla.cli import main
    from vla.data import load_demos

    path = one_demo_file("stack-three", 5, 32)
    (demo,), _ = load_demos([path], DataConfig(image_size=32), SIM_SCENE_LABELS)
    first, second = step_instructions(demo.instruction)
    assert demo.step_instructions[0] == first and demo.step_instructions[-1] == second
    switch = demo.step_instructions.index(second)
    assert demo.step_instructions == [first] * switch + [second] * (len(demo.actions) - switch)
    assert demo.subtasks[switch - 1] == "release"  # the first cube let go, then the second step
    assert main(["train", "--data", path, "--out", str(tmp_path / "run"), "--preset", "smoke", "--set",
                 "data.image_size=32", "--set", "train.step_instructions=0.5", "--quiet"]) == 0
    assert main(["train", "--data", path, "--out", str(tmp_path / "bad"), "--preset", "smoke", "--set",
                 "train.step_instructions=1.5", "--quiet"]) == 2
    assert "train.step_instructions is a share of long-horizon samples" in capsys.readouterr().err
