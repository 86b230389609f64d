import numpy as np
import pytest

from policies.chunking import ChunkExecutor, GripperLatch, TemporalEnsembler
from policies.hierarchical import HierarchicalPolicy, gripper_judge, phase_rank, phrases_from

OBS = {"robot0_gripper_qpos": np.array([0.04, -0.04]), "instruction": "put the red cube on the green cube"}


class FakePlanner:
    def __init__(self, phrases):
        self.phrases, self.calls = list(phrases), 0

    def __call__(self, observation, instruction):
        self.calls += 1
        return self.phrases[min(self.calls - 1, len(self.phrases) - 1)]


class FakeController:
    def __init__(self, chunk=8):
        self.seen, self.chunk = [], chunk

    def __call__(self, observation, instruction, subtask):
        self.seen.append((instruction, subtask))
        return np.tile(np.arange(self.chunk, dtype=np.float32)[:, None], (1, 8))


def test_planner_runs_at_the_configured_rate_and_feeds_the_controller():
    planner, controller = FakePlanner(["reach the red cube", "grasp", "lift"]), FakeController()
    policy = HierarchicalPolicy(planner, controller, plan_every=8, executor=ChunkExecutor(4),
                                subtask_done=lambda o, s: False)
    policy.reset(OBS["instruction"])
    subtasks = [policy.act(OBS).subtask for _ in range(6)]  # 24 control steps
    assert planner.calls == 3  # steps 0, 8, 16
    assert subtasks == ["reach the red cube"] * 2 + ["grasp"] * 2 + ["lift"] * 2
    assert [s for _, s in controller.seen] == subtasks
    assert all(instruction == OBS["instruction"] for instruction, _ in controller.seen)


def test_replans_as_soon_as_the_subtask_is_judged_done():
    planner, controller = FakePlanner(["grasp", "lift"]), FakeController()
    done = {"flag": False}
    policy = HierarchicalPolicy(planner, controller, plan_every=100, executor=ChunkExecutor(4),
                                subtask_done=lambda o, s: done["flag"])
    policy.reset("x")
    assert policy.act(OBS).subtask == "grasp" and policy.act(OBS).subtask == "grasp"
    done["flag"] = True
    assert policy.act(OBS).subtask == "lift" and planner.calls == 2


PHRASES = ("grasp", "lift", "lower", "move above the green cube", "reach the red cube", "release", "wave")


def test_a_forward_only_planner_chooses_among_the_current_and_later_phases():
    assert [phase_rank(p) for p in PHRASES] == [1, 2, 4, 3, 0, 5, None]
    assert phase_rank("lifted") is None and phase_rank("") is None
    assert phrases_from(PHRASES, "lower") == ["lower", "release", "wave"]
    assert phrases_from(PHRASES, "reach the red cube") == list(PHRASES)
    assert phrases_from(PHRASES, "") == list(PHRASES)  # nothing chosen yet


class ScoringPlanner:
    """Picks the best-scored allowed phrase; it would go from "lower" back to "lift"."""

    def __init__(self, scores):
        self.scores, self.allowed = list(scores), []

    def __call__(self, observation, instruction, allowed=PHRASES):
        self.allowed.append(list(allowed))
        scores = self.scores[min(len(self.allowed), len(self.scores)) - 1]
        return max(allowed, key=lambda phrase: scores.get(phrase, -1.0))


def test_forward_only_keeps_the_planner_from_going_back_a_phase():
    scores = [{"lower": 2.0, "lift": 1.0}, {"lift": 2.0, "release": 1.0}]
    for phrases, expected in ((None, "lift"), (PHRASES, "release")):
        planner = ScoringPlanner(scores)
        policy = HierarchicalPolicy(planner, FakeController(), plan_every=4, executor=ChunkExecutor(4),
                                    subtask_done=lambda o, s: False, forward_only_phrases=phrases)
        policy.reset("x")
        assert [policy.act(OBS).subtask for _ in range(2)] == ["lower", expected]
    assert planner.allowed == [list(PHRASES), ["lower", "release", "wave"]]


def test_a_stalled_subtask_is_dropped_until_the_planner_moves_on():
    planner, controller = FakePlanner(["reach the red cube"] * 4 + ["grasp"]), FakeController()
    policy = HierarchicalPolicy(planner, controller, plan_every=4, executor=ChunkExecutor(4),
                                subtask_done=lambda o, s: False, phase_timeout=8)
    policy.reset("x")
    reported = [policy.act(OBS).subtask for _ in range(6)]  # 24 control steps, a plan every 4
    assert [s for _, s in controller.seen] == ["reach the red cube"] * 2 + [""] * 2 + ["grasp"] * 2
    assert reported == ["reach the red cube"] * 4 + ["grasp"] * 2  # the planner's choice is still reported
    with pytest.raises(ValueError, match="phase_timeout"):
        HierarchicalPolicy(planner, controller, phase_timeout=-1)


def test_gripper_judge():
    closed = {"robot0_gripper_qpos": np.array([0.02, -0.02])}
    opened = {"robot0_gripper_qpos": np.array([0.04, -0.04])}
    assert gripper_judge(closed, "grasp") and not gripper_judge(opened, "grasp")
    assert gripper_judge(opened, "release") and not gripper_judge(closed, "release")
    assert not gripper_judge(closed, "lift")


def test_executes_k_actions_or_one_ensembled_action():
    policy = HierarchicalPolicy(FakePlanner(["lift"]), FakeController(), executor=ChunkExecutor(3))
    policy.reset("x")
    np.testing.assert_array_equal(policy.act(OBS).actions[:, 0], [0, 1, 2])
    policy = HierarchicalPolicy(FakePlanner(["lift"]), FakeController(), executor=ChunkExecutor(ensemble=True))
    policy.reset("x")
    assert policy.act(OBS).actions.shape == (1, 8)


def test_temporal_ensembling_averages_overlapping_predictions():
    ensembler = TemporalEnsembler(decay=0.0)
    first = ensembler.add_and_pick(np.array([[0.0], [10.0], [20.0]]))
    second = ensembler.add_and_pick(np.array([[2.0], [4.0], [6.0]]))
    third = ensembler.add_and_pick(np.array([[8.0], [8.0], [8.0]]))
    assert first[0] == 0.0 and second[0] == pytest.approx(6.0) and third[0] == pytest.approx((20 + 4 + 8) / 3)


def test_ensemble_decay_weights_newer_or_older_predictions():
    chunks = [np.array([[0.0], [10.0]]), np.array([[20.0], [30.0]])]

    def second_action(decay):
        ensembler = TemporalEnsembler(decay=decay)
        ensembler.add_and_pick(chunks[0])
        return float(ensembler.add_and_pick(chunks[1])[0])  # averages 10 (older) and 20 (newer)

    assert second_action(0.0) == pytest.approx(15.0)
    assert second_action(1.0) < 15.0 < second_action(-1.0)
    assert ChunkExecutor(ensemble=True, ensemble_decay=-2.0).ensembler.decay == -2.0


def test_gripper_latch_holds_a_decision_through_an_uncertain_command():
    latch = GripperLatch(close_above=0.5, open_below=0.25)
    commands = [0.1, 0.4, 0.55, 0.43, 0.39, 0.56, 0.3, 0.2, 0.45, 0.6]  # an ensembled command near 0.5
    actions = np.column_stack([np.arange(len(commands)), commands])
    latched = latch.apply(actions)
    np.testing.assert_array_equal(latched[:, -1], [0, 0, 1, 1, 1, 1, 1, 0, 0, 1])
    np.testing.assert_array_equal(latched[:, 0], actions[:, 0])  # joints untouched, input not modified
    assert actions[2, -1] == 0.55
    latch.reset()
    assert latch.apply(np.array([[0.0, 0.45]]))[0, -1] == 0.0  # a new episode starts open
    with pytest.raises(ValueError, match="open_below <= close_above"):
        GripperLatch(close_above=0.3, open_below=0.6)


def test_executor_latches_the_gripper_after_ensembling():
    executor = ChunkExecutor(ensemble=True, ensemble_decay=0.0, gripper_latch=GripperLatch())
    chunks = [[[0.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]], [[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]]
    executed = [executor.select(np.array(chunk))[0, -1] for chunk in chunks]
    # ensembled gripper: 0, (1 + 1) / 2, (1 + 0) / 2 = 0.5 (held closed by the latch), 0 (opens)
    assert executed == [0.0, 1.0, 1.0, 0.0]


def test_after_a_release_a_forward_only_planner_may_start_the_next_pick():
    assert phrases_from(PHRASES, "release") == list(PHRASES)


class FavouritePlanner:
    """Picks its favourite allowed phrase: reaching for red again, over anything else."""

    def __init__(self, script):
        self.script, self.calls, self.allowed = list(script), 0, []

    def __call__(self, observation, instruction, allowed=None):
        self.calls += 1
        self.allowed.append(list(allowed) if allowed is not None else None)
        wanted = self.script[min(self.calls - 1, len(self.script) - 1)]
        return next((p for p in wanted if allowed is None or p in allowed), allowed[0] if allowed else wanted[0])


LONG_PHRASES = ("reach the red cube", "reach the blue cube", "grasp", "lift", "move above the green cube", "lower",
                "release")


@pytest.mark.parametrize("memory", [False, True])
def test_the_memory_keeps_the_planner_from_reaching_again_for_a_cube_it_placed(memory):
    script = [["reach the red cube"], ["grasp"], ["release"],
              ["reach the red cube", "reach the blue cube"], ["reach the red cube", "reach the blue cube"]]
    planner = FavouritePlanner(script)
    policy = HierarchicalPolicy(planner, FakeController(), plan_every=4, executor=ChunkExecutor(4),
                                subtask_done=lambda o, s: False, phrases=LONG_PHRASES, memory=memory)
    policy.reset("x")
    chosen = [policy.act(OBS).subtask for _ in range(5)]
    assert chosen[:3] == ["reach the red cube", "grasp", "release"]
    assert chosen[3:] == (["reach the blue cube"] * 2 if memory else ["reach the red cube"] * 2)
    policy.reset("x")  # a new episode forgets what was placed
    assert policy.done == [] and policy.reached == ""


def test_a_memory_needs_the_planner_phrases():
    with pytest.raises(ValueError, match="phrases"):
        HierarchicalPolicy(FavouritePlanner([["grasp"]]), FakeController(), memory=True)


def test_a_memory_alone_lets_the_planner_go_back_a_phase():
    planner = FavouritePlanner([["lower"], ["lift"]])
    policy = HierarchicalPolicy(planner, FakeController(), plan_every=4, executor=ChunkExecutor(4),
                                subtask_done=lambda o, s: False, phrases=LONG_PHRASES, memory=True)
    policy.reset("x")
    assert [policy.act(OBS).subtask for _ in range(2)] == ["lower", "lift"]
    assert planner.allowed[1] == list(LONG_PHRASES)
