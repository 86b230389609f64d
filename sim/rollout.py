"""Running one episode of a policy in a VlaEnv, optionally recording it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from policies.base import ActionChunk, Policy
from sim.action_noise import ActionNoise
from sim.approach import ApproachTracker
from sim.episode import Episode
from sim.interventions import Operator
from sim.takeover import TakeoverRule

STATE_KEYS = ("robot0_joint_pos", "robot0_gripper_qpos", "robot0_eef_pos", "robot0_eef_quat")


@dataclass
class RolloutResult:
    seed: int
    success: bool
    steps: int
    instruction: str
    episode: Episode | None = None
    frames: list[np.ndarray] = field(default_factory=list)  # front|wrist side by side, (H, 2W, 3)
    subtasks: list[str] = field(default_factory=list)
    approach: dict = field(default_factory=dict)  # sim.approach.ApproachTracker.summary()
    interventions: list[dict] = field(default_factory=list)  # {"step", "text", "kind"} (sim.interventions)


class EpisodeRecorder:
    """Accumulates per-step data; index t holds what was seen before actions[t]."""

    def __init__(self):
        self.obs: dict[str, list] = {}
        self.actions, self.states, self.rewards, self.dones = [], [], [], []

    def add(self, obs: dict, state: np.ndarray, action: np.ndarray, reward: float, done: bool) -> None:
        for key, value in obs.items():
            if key != "instruction":
                self.obs.setdefault(key, []).append(value)
        self.states.append(state)
        self.actions.append(action)
        self.rewards.append(reward)
        self.dones.append(done)

    def to_episode(self, env, subtasks: list[str], success: bool) -> Episode:
        return Episode(
            seed=env.seed_used, instruction=env.instruction, goal=env.goal.to_dict(),
            actions=np.asarray(self.actions, dtype=np.float32),
            observations={k: np.stack(v) for k, v in self.obs.items()},
            states=np.asarray(self.states, dtype=np.float64),
            rewards=np.asarray(self.rewards, dtype=np.float64), dones=np.asarray(self.dones, dtype=np.uint8),
            subtasks=subtasks, model_file=env.model_xml(), success=success,
        )


def run_episode(env, policy: Policy, seed: int, *, record: bool = False, video: bool = False,
                execute_steps: int | None = None, noise: ActionNoise | None = None,
                labeller: Policy | None = None, operator: Operator | None = None,
                takeover: TakeoverRule | None = None) -> RolloutResult:
    """Roll out until success or the step limit. Chunks are executed `execute_steps` at a time
    (None: the whole chunk) before the policy is asked again. With `noise`, the robot executes
    perturbed actions and the recording keeps the policy's own (sim.action_noise). With a
    `labeller` (DAgger), the policy drives and the recording keeps, for every state it visits,
    the labeller's action and subtask instead; with a `takeover` rule too, the labeller drives
    whenever the rule says so (sim.takeover). An `operator` (sim.interventions) intervenes on the
    policy before control steps; result.interventions lists what it did."""
    if operator is not None:
        operator.check(policy)
    obs, _ = env.reset(seed=seed)
    perturb = noise.drift(seed) if noise else None
    policy.reset(env.instruction)
    if labeller is not None:
        labeller.reset(env.instruction)
    if operator is not None:
        operator.start(policy, env.instruction)
    recorder = EpisodeRecorder() if record else None
    labels: list[str] = []
    result = RolloutResult(seed=seed, success=False, steps=0, instruction=env.instruction)
    approach = ApproachTracker(env)
    handover = takeover.tracker() if takeover is not None and labeller is not None else None
    done = False
    while not done:
        if operator is not None:
            operator.poll(env.steps, None)
        chunk = policy.act(obs)
        _check_chunk(chunk, env)
        for action in chunk.actions[:execute_steps]:
            if operator is not None:
                operator.poll(env.steps, chunk.subtask)
            state = env.mujoco_state() if record else None
            if video:
                result.frames.append(np.concatenate([obs[k] for k in _image_keys(obs)], axis=1))
            approach.observe(obs, action)
            label, label_subtask = _label(labeller, obs, action, chunk.subtask)
            if handover is not None and handover.expert_drives(label_subtask):
                action = label
            next_obs, reward, terminated, truncated, _ = env.step(perturb(action) if perturb else action)
            done = terminated or truncated
            result.subtasks.append(chunk.subtask)
            labels.append(label_subtask)
            if recorder:
                recorder.add(obs, state, label, reward, done)
            obs = next_obs
            if done:
                break
    result.success = env.is_success()
    result.steps = env.steps
    result.approach = approach.summary()
    result.interventions = list(operator.log) if operator is not None else []
    if recorder:
        result.episode = recorder.to_episode(env, labels, result.success)
        result.episode.extra_attrs.update(noise.attrs() if noise else {})
        result.episode.extra_attrs.update(handover.attrs() if handover else {})
    return result


def _label(labeller: Policy | None, obs: dict, action: np.ndarray, subtask: str) -> tuple[np.ndarray, str]:
    """What the recording keeps for this step: the executed action, or the labeller's."""
    if labeller is None:
        return action, subtask
    chunk = labeller.act(obs)
    return chunk.actions[0], chunk.subtask


def _check_chunk(chunk: ActionChunk, env) -> None:
    if chunk.actions.shape[1] != env.action_space.shape[0]:
        raise ValueError(f"policy returned actions of width {chunk.actions.shape[1]}, "
                         f"the environment takes {env.action_space.shape[0]}")


def _image_keys(obs: dict) -> list[str]:
    return [k for k in obs if k.endswith("_image")]
