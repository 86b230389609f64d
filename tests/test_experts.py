import numpy as np

from sim.experts.scripted import ExpertConfig, ScriptedExpert
from sim.rollout import run_episode

EXPECTED_PHASES = {
    "lift": ["reach the red cube", "grasp", "lift"],
    "stack": ["reach the red cube", "grasp", "lift", "move above the green cube", "lower", "release"],
}


def _phases(subtasks: list[str]) -> list[str]:
    return [s for i, s in enumerate(subtasks) if i == 0 or subtasks[i - 1] != s]


def test_expert_succeeds_on_a_few_seeds(env_cache, one_step_task):
    task_name = one_step_task
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


def _joint_moves(env, expert, seeds, steps: int = 8) -> np.ndarray:
    """(seeds, 7): how far each joint target is from the start pose after `steps` steps."""
    moves = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert.reset(obs["instruction"])
        start = np.array(obs["robot0_joint_pos"])
        for _ in range(steps):
            action = expert.act(obs).actions[0]
            obs, *_ = env.step(action)
        moves.append(action[:7] - start)
    return np.array(moves)


def test_fixed_yaw_expert_keeps_its_start_yaw_and_a_steadier_joint_path(env_cache):
    env = env_cache("lift")
    aligned, fixed = ScriptedExpert(env), ScriptedExpert(env, ExpertConfig(align_yaw=False))
    spread_aligned = _joint_moves(env, aligned, range(8)).std(0)
    spread_fixed = _joint_moves(env, fixed, range(8)).std(0)
    np.testing.assert_allclose(fixed.target_rot, fixed.down_rot)
    assert not np.allclose(aligned.target_rot, aligned.down_rot)
    # the cube's random turn no longer swings the base, elbow and wrist joints (0, 2, 6) apart
    assert spread_fixed[[0, 2, 6]].sum() < 0.5 * spread_aligned[[0, 2, 6]].sum()
    for task in ("lift", "pick-color"):
        result = run_episode(env_cache(task), ScriptedExpert(env_cache(task), ExpertConfig(align_yaw=False)), seed=11)
        assert result.success, f"fixed-yaw expert failed {task}"
