"""Operator interventions on a policy (policies/hierarchical.py, policies/vla_policy.py): which subtask the
controller pursues after one, and when the planner takes over again. Fake planner and controller, no model."""

import numpy as np
import pytest

from intervention_fakes import Controller, Planner
from policies.base import Intervenable, Intervention, takes_interventions
from policies.chunking import ChunkExecutor
from policies.hierarchical import HierarchicalPolicy, looks_like_subtask
from policies.hold import HoldPolicy
from policies.server import per_session_copies
from policies.vla_policy import FlatVlaPolicy

OBS = {"robot0_gripper_qpos": np.array([0.04, -0.04]), "instruction": "put the red cube on the green cube"}
PHRASES = ("reach the red cube", "grasp", "lift", "move above the green cube", "lower", "release")


def hierarchical(planner, done=lambda obs, subtask: False, **options):
    controller = Controller()
    options = {"plan_every": 8, "executor": ChunkExecutor(4), "subtask_done": done, "phrases": PHRASES, **options}
    policy = HierarchicalPolicy(planner, controller, **options)
    policy.reset(OBS["instruction"])
    return policy, controller


def run(policy, chunks):
    """The subtasks the controller was given over `chunks` act() calls (4 control steps each)."""
    return [policy.act(OBS).subtask for _ in range(chunks)]


def test_an_intervened_subtask_drives_the_next_act_and_an_earlier_phase_cannot_replace_it():
    planner = Planner("reach the red cube")
    policy, controller = hierarchical(planner)
    assert run(policy, 2) == ["reach the red cube"] * 2
    applied = policy.intervene("lift", "subtask")
    assert applied == Intervention("subtask", "lift", applied.description) and "lift" in applied.description
    assert run(policy, 4) == ["lift"] * 4  # the planner, asked twice meanwhile, still says "reach"
    assert controller.seen[-1] == (OBS["instruction"], "lift") and planner.instructions.count(OBS["instruction"]) >= 3
    planner.answer = "grasp"  # an earlier phase than lift: still held
    assert run(policy, 2) == ["lift"] * 2
    planner.answer = "move above the green cube"  # a later phase: the planner continues from there
    assert run(policy, 2) == ["move above the green cube"] * 2
    planner.answer = "reach the red cube"  # no longer pinned: the planner is free again
    assert run(policy, 2) == ["reach the red cube"] * 2


def test_a_pinned_subtask_ends_when_it_is_judged_done():
    judged = {"grasp": False}
    planner = Planner("reach the red cube")
    policy, _ = hierarchical(planner, done=lambda obs, subtask: judged.get(subtask, False), plan_every=100)
    policy.intervene("grasp", "subtask")
    assert run(policy, 3) == ["grasp"] * 3
    calls = policy.plan_calls
    judged["grasp"] = True  # the fingers closed: the planner is asked at once and its choice stands
    assert run(policy, 1) == ["reach the red cube"] and policy.plan_calls == calls + 1


def test_a_pinned_subtask_is_held_at_most_intervention_hold_steps():
    policy, _ = hierarchical(Planner("reach the red cube"), intervention_hold=12)
    policy.intervene("release", "subtask")
    assert run(policy, 4) == ["release"] * 3 + ["reach the red cube"]  # 12 steps held, then the planner
    with pytest.raises(ValueError, match="intervention_hold"):
        HierarchicalPolicy(Planner(), Controller(), intervention_hold=0)


def test_a_phrase_outside_the_phase_order_is_held_until_the_planner_differs_after_two_plan_periods():
    planner = Planner("reach the red cube")
    policy, _ = hierarchical(planner, plan_every=4)
    policy.intervene("wave at the camera", "subtask")
    assert run(policy, 3) == ["wave at the camera"] * 2 + ["reach the red cube"]  # replaced at 8 steps
    policy.intervene("wave at the camera", "subtask")
    planner.answer = "wave at the camera"  # the planner agrees: nothing to replace
    assert run(policy, 3) == ["wave at the camera"] * 3


def test_an_instruction_replaces_the_episodes_for_planner_and_controller_and_replans_at_once():
    planner = Planner("reach the red cube")
    policy, controller = hierarchical(planner, plan_every=100)
    run(policy, 1)
    calls = policy.plan_calls
    applied = policy.intervene("put the blue cube on the red cube", "instruction")
    assert applied.kind == "instruction" and applied.text == "put the blue cube on the red cube"
    planner.answer = "reach the blue cube"
    assert run(policy, 2) == ["reach the blue cube"] * 2 and policy.plan_calls == calls + 1
    # the observation still carries the episode's instruction: the intervened one wins for the episode
    assert planner.instructions[-1] == "put the blue cube on the red cube"
    assert controller.seen[-1] == ("put the blue cube on the red cube", "reach the blue cube")
    policy.reset("lift the red cube")  # a new episode forgets it
    run(policy, 1)
    assert planner.instructions[-1] == OBS["instruction"] and policy.intervened_instruction is None


def test_reset_forgets_a_pinned_subtask():
    policy, _ = hierarchical(Planner("reach the red cube"))
    policy.intervene("lift", "subtask")
    policy.reset(OBS["instruction"])
    assert run(policy, 1) == ["reach the red cube"]


@pytest.mark.parametrize("text, kind", [
    ("grasp", "subtask"), ("  Lift ", "subtask"), ("reach the blue cube", "subtask"), ("move above the bin", "subtask"),
    ("move behind the red cube", "subtask"), ("push it onto the yellow marker", "subtask"),
    ("lift the red cube", "instruction"), ("pick up the blue cube", "instruction"),
    ("put the green cube on the red cube", "instruction"), ("wave", "instruction"),
])
def test_auto_takes_subtask_phrases_as_subtasks_and_anything_else_as_an_instruction(text, kind):
    policy, _ = hierarchical(Planner())
    assert policy.intervene(text).kind == kind


def test_auto_takes_any_phrase_the_planner_knows_as_a_subtask():
    policy, _ = hierarchical(Planner(), phrases=PHRASES + ("wave",))
    assert policy.intervene("wave").kind == "subtask" and looks_like_subtask("wave", ("wave",))
    assert not looks_like_subtask("wave") and not looks_like_subtask("lift the red cube")


def test_empty_texts_and_unknown_kinds_are_refused():
    policy, _ = hierarchical(Planner())
    with pytest.raises(ValueError, match="needs a text"):
        policy.intervene("   ")
    with pytest.raises(ValueError, match="kind must be one of"):
        policy.intervene("grasp", "order")


class Predictor:
    def __init__(self):
        self.instructions = []

    def predict(self, observation, instruction):
        self.instructions.append(instruction)
        return np.zeros((4, 8), np.float32)


def test_a_flat_policy_takes_instructions_only():
    predictor = Predictor()
    policy = FlatVlaPolicy(predictor)
    policy.reset(OBS["instruction"])
    with pytest.raises(ValueError, match=r"^this policy runs flat \(no planner\)"):
        policy.intervene("grasp", "subtask")
    assert policy.intervene("grasp").kind == "instruction"  # no planner: auto means an instruction
    policy.intervene("pick up the blue cube", "instruction")
    policy.act(OBS)
    assert predictor.instructions == ["pick up the blue cube"]
    policy.reset("lift the red cube")
    policy.act(OBS)
    assert predictor.instructions[-1] == OBS["instruction"]


def test_capability_and_per_session_copies_keep_their_own_interventions():
    assert not takes_interventions(HoldPolicy()) and not isinstance(HoldPolicy(), Intervenable)
    factory = per_session_copies(lambda: hierarchical(Planner("reach the red cube"))[0])
    first, second = factory(), factory()
    assert isinstance(first, Intervenable) and first.phrases == PHRASES
    first.intervene("lift", "subtask")
    assert run(first, 1) == ["lift"] and run(second, 1) == ["reach the red cube"]
