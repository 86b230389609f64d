"""The long-horizon tasks: stack-three (a three-cube tower in a named order) and crate-three (three cubes into a
crate in a named order), their held-out orders, their experts and the per-frame steps of their labels."""

from itertools import permutations

import numpy as np
import pytest

from scene_edits import hold, move_cube
from sim.experts.corrective import CorrectiveExpert
from sim.experts.scripted import ScriptedExpert, drop_offset
from sim.fixtures import FIXTURES
from sim.goal_relabel import counterfactual_goal
from sim.segmentation import agreement, segment_subtasks
from sim.object_positions import goal_schedule, goal_slots, per_goal_slot
from sim.tasks import COLORS, HELD_OUT_ORDERS, SEEN_ORDERS, TASKS, Goal, get_task

LONG_TASKS = ("stack-three", "crate-three")


def _order(goal: Goal) -> tuple[str, ...]:
    return tuple(step.target for step in goal.steps) if goal.base == "crate" else (goal.target, goal.base,
                                                                                    goal.then[0].target)


def test_a_long_goal_is_its_steps_in_order_and_survives_a_round_trip():
    tower = Goal("red", "green", then=(Goal("blue", "red"),))
    assert tower.steps == (Goal("red", "green"), Goal("blue", "red"))
    assert Goal.from_dict(tower.to_dict()) == tower
    assert Goal.from_dict(Goal("red").to_dict()) == Goal("red")  # one-step goals keep their old form
    assert "then" not in Goal("red", "green").to_dict()
    fields = tower.template_fields()
    assert (fields["target"], fields["base"], fields["target2"], fields["base2"]) == ("red", "green", "blue", "red")


def test_held_out_orders_are_fixed_disjoint_and_never_drawn_for_training():
    assert set(SEEN_ORDERS) | set(HELD_OUT_ORDERS) == set(permutations(COLORS))
    assert not set(SEEN_ORDERS) & set(HELD_OUT_ORDERS)
    rng = np.random.default_rng(0)
    for task in LONG_TASKS:
        seen = {_order(get_task(task).draw_goal(rng)) for _ in range(200)}
        unseen = {_order(get_task(f"{task}-unseen").draw_goal(rng)) for _ in range(200)}
        assert seen == set(SEEN_ORDERS)
        assert unseen == set(HELD_OUT_ORDERS)


@pytest.mark.parametrize("task", LONG_TASKS)
def test_every_instruction_names_the_three_cubes_in_the_goal_order(task):
    spec, rng = get_task(task), np.random.default_rng(3)
    for _ in range(20):
        goal = spec.draw_goal(rng)
        instruction = spec.instruction(goal, rng)
        named = sorted(COLORS, key=instruction.index)
        assert set(named) == set(COLORS)
        if task == "crate-three":
            assert tuple(named) == _order(goal)


def test_stack_three_succeeds_only_with_the_whole_tower_in_its_order(env_cache):
    env = env_cache("stack-three", 32)
    env.reset(seed=4)
    bottom, middle, top = env.goal.base, env.goal.target, env.goal.then[0].target
    spot = env.cube_pose(bottom)[0]
    move_cube(env, middle, spot + [0, 0, 0.041])  # one step done
    hold(env, 20)
    assert not env.is_success()
    move_cube(env, top, spot + [0, 0, 0.082])
    move_cube(env, middle, spot + [0, 0, 0.041])
    hold(env, 20)
    assert env.is_success()
    move_cube(env, middle, spot + [0, 0, 0.082])  # the same three cubes, the wrong two on top
    move_cube(env, top, spot + [0, 0, 0.041])
    hold(env, 20)
    assert not env.is_success()


def test_crate_three_succeeds_only_with_the_cubes_dropped_in_the_named_order(env_cache):
    env = env_cache("crate-three", 32)
    for order, expected in ((lambda steps: steps, True), (lambda steps: steps[::-1], False)):
        env.reset(seed=6)
        crate = env.cube_pose("crate")[0]
        steps = order(list(env.goal.steps))
        for step in steps:
            assert not env.is_success()
            move_cube(env, step.target, crate + drop_offset(step, len(steps)) + [0, 0, 0.03])  # the expert's spot
            hold(env, 15)
        assert env.is_success() is expected


def test_each_colour_has_a_drop_spot_of_its_own_in_the_crate_whatever_its_step():
    spots = {color: tuple(drop_offset(Goal(color, "crate"), 3)) for color in COLORS}
    assert len(set(spots.values())) == len(COLORS)  # the step's words say where its cube goes
    cube_half = 0.02
    assert all(max(abs(x), abs(y)) + cube_half < FIXTURES["crate"].opening for x, y, _ in spots.values())
    assert not drop_offset(Goal("red", "crate"), 1).any()  # a single drop and a tower go to the centre
    assert not drop_offset(Goal("red", "green"), 2).any()


@pytest.mark.parametrize("task", LONG_TASKS)
def test_the_expert_and_the_corrective_expert_finish_the_task_with_every_step_labelled(env_cache, task):
    env = env_cache(task, 32)
    for expert_class in (ScriptedExpert, CorrectiveExpert):
        obs, info = env.reset(seed=21)
        expert = expert_class(env)
        expert.reset()
        labels, grippers, eef = [], [], []
        for _ in range(env.max_steps):
            chunk = expert.act(obs)
            labels.append(chunk.subtask)
            grippers.append(chunk.actions[0, -1])
            eef.append(obs["robot0_eef_pos"])
            obs, _, done, truncated, info = env.step(chunk.actions[0])
            if done or truncated:
                break
        assert info["success"], expert_class.__name__
        reaches = [label for label in labels if label.startswith("reach")]
        first_reaches = list(dict.fromkeys(reaches))  # the corrective expert may approach a cube again
        assert first_reaches == [f"reach the {step.target} cube" for step in env.goal.steps], expert_class.__name__
        if expert_class is ScriptedExpert:  # a teleoperated demo of it would be labelled the same way
            segmented = segment_subtasks(np.array(grippers), np.array(eef), env.goal)
            assert agreement(segmented, labels) >= 0.85
            assert list(dict.fromkeys(p for p in segmented if p.startswith("reach"))) == first_reaches


def test_the_schedule_moves_to_the_next_step_once_a_cube_is_placed_and_let_go():
    goal = Goal("red", "green", then=(Goal("blue", "red"),))
    frames = 6
    green = np.tile([0.1, 0.0, -0.1], (frames, 1))  # offsets from the gripper
    red = green + [0, 0, 0.2]  # far above
    red[2:] = green[2:] + [0, 0, 0.041]  # on the green cube from frame 2 ...
    shift = np.zeros((frames, 3))
    shift[:4] = -red[:4]  # ... but held (at the gripper) until frame 4
    offsets = {"green": green + shift, "red": red + shift, "blue": np.tile([0.3, 0.0, 0.0], (frames, 1))}
    schedule = goal_schedule(goal, offsets)
    assert schedule.step.tolist() == [0, 0, 0, 0, 1, 1]
    slots = goal_slots(offsets, schedule)  # target, then base, per frame
    assert np.allclose(slots[3, :3], offsets["red"][3]) and np.allclose(slots[3, 3:], offsets["green"][3])
    assert np.allclose(slots[4, :3], offsets["blue"][4]) and np.allclose(slots[4, 3:], offsets["red"][4])
    pixels = {color: np.zeros((frames, 2, 2)) + i for i, color in enumerate(COLORS)}
    assert per_goal_slot(pixels, schedule).shape == (frames, 2, 2, 2)


def test_long_goals_are_not_relabelled():
    tower = Goal("red", "green", then=(Goal("blue", "red"),))
    assert counterfactual_goal("stack-three", tower, COLORS, np.random.default_rng(0)) is None


@pytest.mark.parametrize("task", LONG_TASKS)
def test_every_phrasing_fits_the_instruction_space(task):
    from sim.env import _INSTRUCTION_CHARSET

    spec = get_task(task)
    fields = spec.draw_goal(np.random.default_rng(0)).template_fields()
    for template in spec.templates:
        instruction = template.format(**fields)
        assert set(instruction) <= set(_INSTRUCTION_CHARSET) and len(instruction) <= 256, instruction


def test_the_long_horizon_tasks_say_so():
    assert {name for name, spec in TASKS.items() if spec.long_horizon} == {
        "stack-three", "stack-three-unseen", "crate-three", "crate-three-unseen"}
