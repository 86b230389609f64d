import numpy as np

from sim.experts.scripted import ScriptedExpert
from sim.rollout import run_episode

EXPECTED_PHASES = {
    "lift": ["reach the red cube", "grasp", "lift"],
    "stack": ["reach the red cube", "grasp", "lift", "move above the green cube", "lower", "release"],
}


def _phases(subtasks: list[str]) -> list[str]:
    return [s for i, s in enumerate(subtasks) if i == 0 or subtasks[i - 1] != s]


def test_expert_succeeds_on_a_few_seeds(env_cache, task_name):
    env = env_cache(task_name)
    expert = ScriptedExpert(env)
    for seed in (11, 12):
        result = run_episode(env, expert, seed)
        assert result.success, f"{task_name} seed {seed} failed after {result.steps} steps"
        assert result.steps < env.max_steps


def test_subtask_labels_follow_the_plan(env_cache):
    for task, phases in EXPECTED_PHASES.items():
        env = env_cache(task)
        result = run_episode(env, ScriptedExpert(env), seed=3)
        assert _phases(result.subtasks) == phases


def test_labels_name_the_goal_colours(env_cache):
    env = env_cache("place-color")
    result = run_episode(env, ScriptedExpert(env), seed=5)
    goal = env.goal
    assert goal.target in result.instruction and goal.base in result.instruction
    assert _phases(result.subtasks)[0] == f"reach the {goal.target} cube"
    assert f"move above the {goal.base} cube" in result.subtasks


def test_expert_actions_are_valid_joint_targets(env_cache):
    env = env_cache("pick-color")
    expert = ScriptedExpert(env)
    obs, _ = env.reset(seed=2)
    expert.reset(obs["instruction"])
    for _ in range(10):
        chunk = expert.act(obs)
        assert chunk.actions.shape == (1, 8)
        assert np.all(chunk.actions[0, :7] >= env.joint_low) and np.all(chunk.actions[0, :7] <= env.joint_high)
        assert chunk.actions[0, 7] in (0.0, 1.0)
        obs, *_ = env.step(chunk.actions[0])
