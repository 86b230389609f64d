"""`vla teleop`: an operator drives the simulated Panda in end-effector space, recorded like `vla collect`.

A device says, every control step, how to move the gripper (dpos (3,) m, world frame), how to turn it
(drot (3,) rad, axis-angle, world frame) and whether to close it (TeleopCommand). EndEffectorTeleop is
a Policy that keeps a gripper setpoint, moves it by the command (clipped to a speed limit) and turns it
into the project's action space by inverse kinematics: absolute joint targets (7,) + gripper in [0, 1].
Episodes are recorded through sim.rollout like collected ones (observations, MuJoCo states, rewards);
they come without the experts' subtask phrases, so sim.segmentation labels them.

Devices: `scripted` (ScriptedOperator), a headless stand-in for a person used by tests and
measurements: it watches the scene, steers toward where the scripted expert would put the gripper
through the same commands a device sends, with hand tremor, pauses and overshoots it then corrects.
`keyboard`, `spacemouse` and `gamepad` wrap robosuite's device drivers (sim.teleop_devices); a person
drives them in a live view (sim.teleop_session).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from policies.base import ActionChunk
from sim.experts.scene import Scene
from sim.experts.scripted import ExpertConfig, ScriptedExpert
from sim.teleop_command import Device, TeleopCommand
from sim.teleop_devices import HUMAN_DEVICES


class EndEffectorTeleop:
    """The Policy a device drives: end-effector commands -> joint targets by IK (no simulator state is
    read but the arm's joints and kinematics)."""

    def __init__(self, env, device: Device, max_step_m: float = 0.02, max_turn_rad: float = 0.1):
        self.env, self.device = env, device
        self.max_step_m, self.max_turn_rad = max_step_m, max_turn_rad

    def reset(self, instruction: str) -> None:
        scene = Scene(self.env)
        self.ik = scene.arm_ik()
        self.q_cmd = scene.joint_positions()
        self.setpoint, self.rotation = self.ik.forward(self.q_cmd)
        self.device.start(self.env)

    def act(self, observation) -> ActionChunk:
        command = self.device.read()
        self.setpoint = self.setpoint + _clip_norm(np.asarray(command.dpos, dtype=np.float64), self.max_step_m)
        self.rotation = _rotation(_clip_norm(np.asarray(command.drot, dtype=np.float64), self.max_turn_rad)) \
            @ self.rotation
        self.q_cmd = self.ik.solve(self.q_cmd, self.setpoint, self.rotation)
        return ActionChunk(np.append(self.q_cmd, 1.0 if command.close else 0.0)[None].astype(np.float32))


def _clip_norm(vector: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector if norm <= limit else vector * (limit / norm)


def _rotation(rotvec: np.ndarray) -> np.ndarray:
    """(3, 3) rotation of an axis-angle vector (Rodrigues)."""
    angle = float(np.linalg.norm(rotvec))
    if angle < 1e-12:
        return np.eye(3)
    x, y, z = rotvec / angle
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


@dataclass
class OperatorHabits:
    """How the scripted operator is imperfect: tremor (m, std per step), the gain with which it closes the
    gap to where it wants the gripper, pauses (chance per step, length) and overshoots (chance per step,
    size m, length)."""

    tremor_m: float = 0.0015
    gain: float = 0.5
    pause_chance: float = 0.02
    pause_steps: tuple[int, int] = (3, 10)
    overshoot_chance: float = 0.01
    overshoot_m: float = 0.015
    overshoot_steps: tuple[int, int] = (4, 10)


@dataclass
class ScriptedOperator:
    """A headless operator (Device): privileged scene, fixed gripper yaw, human-like imperfections."""

    seed: int = 0
    habits: OperatorHabits = field(default_factory=OperatorHabits)

    def start(self, env) -> None:
        self.scene = Scene(env)
        self.expert = ScriptedExpert(env, ExpertConfig(align_yaw=False))
        self.expert.reset(env.instruction)
        self.rng = np.random.default_rng([self.seed, env.seed_used or 0])
        self.paused = self.offset_steps = 0
        self.offset = np.zeros(3)
        self.close = False

    def read(self) -> TeleopCommand:
        chunk = self.expert.act()  # advances where the expert would put the gripper now
        if self.paused:
            self.paused -= 1
            return TeleopCommand(np.zeros(3), np.zeros(3), self.close)
        self._maybe_pause_or_overshoot()
        self.close = bool(chunk.actions[0, -1] > 0.5)
        target = self.expert.setpoint + (self.offset if self.offset_steps else 0.0)
        self.offset_steps = max(0, self.offset_steps - 1)
        gap = target - self.scene.grip_site_pos()
        dpos = self.habits.gain * gap + self.rng.normal(0.0, self.habits.tremor_m, 3)
        return TeleopCommand(dpos, np.zeros(3), self.close)

    def _maybe_pause_or_overshoot(self) -> None:
        habits = self.habits
        if self.rng.random() < habits.pause_chance:
            self.paused = int(self.rng.integers(*habits.pause_steps))
        elif not self.offset_steps and self.rng.random() < habits.overshoot_chance:
            direction = self.rng.normal(size=3)
            self.offset = habits.overshoot_m * direction / np.linalg.norm(direction)
            self.offset_steps = int(self.rng.integers(*habits.overshoot_steps))


DEVICES = {"scripted": ScriptedOperator, **HUMAN_DEVICES}  # name -> (seed=...) -> Device


@dataclass(frozen=True)
class TeleopReport:
    out: str
    kept: int
    discarded: int
    episodes: list[dict]  # {"seed", "success", "steps"} per attempt


def record_teleop(task: str, device: Device, episodes: int, out: str, *, seed: int = 0, append: bool = False,
                  keep_failures: bool = False, env_config=None, max_attempts: int | None = None,
                  instruction: str | None = None, on_episode=None) -> TeleopReport:
    """Drive `episodes` kept episodes of `task` with `device` (seeds seed, seed + 1, ...) into the dataset
    `out`; episodes that do not succeed are discarded unless keep_failures. Each kept demo is labelled
    by sim.segmentation and marked teleop=<device class>; with `instruction`, it is recorded as the demo's
    instruction instead of the task's phrasing (a new way to say it). A run that keeps none leaves no new
    file."""
    from sim.env import EnvConfig, VlaEnv
    from sim.rollout import run_episode

    config = env_config or EnvConfig()
    attempts, kept, log = max_attempts or 3 * episodes, 0, []
    with VlaEnv(task, config) as env, teleop_dataset(out, task, config, append=append) as writer:
        policy = EndEffectorTeleop(env, device)
        for episode_seed in range(seed, seed + attempts):
            result = run_episode(env, policy, episode_seed, record=True)
            log.append({"seed": episode_seed, "success": bool(result.success), "steps": result.steps})
            if result.success or keep_failures:
                write_teleop_episode(writer, result.episode, type(device).__name__, instruction)
                kept += 1
            if on_episode:
                on_episode(log[-1], kept)
            if kept == episodes:
                break
    return TeleopReport(str(out), kept, len(log) - kept, log)


def teleop_dataset(out: str, task: str, config, append: bool = False):
    """The dataset a teleop run writes (sim.dataset_output: gone again if no episode is kept): `vla collect`'s
    env args, demonstrator "teleop"."""
    from sim.collect import env_args
    from sim.dataset_output import dataset_output

    return dataset_output(out, task, {**env_args(task, config), "demonstrator": "teleop"}, append=append)


def write_teleop_episode(writer, episode, device_name: str, instruction: str | None = None) -> None:
    """Write a kept episode: labelled (label_teleop_episode), with `instruction` as its instruction if given."""
    episode = label_teleop_episode(episode, device_name)
    episode.instruction = instruction or episode.instruction
    writer.write(episode)


def label_teleop_episode(episode, device_name: str):
    """The episode with subtask phrases from its gripper commands and motion, marked as teleoperated."""
    from sim.segmentation import segment_subtasks
    from sim.tasks import Goal

    episode.subtasks = segment_subtasks(episode.actions[:, -1], episode.observations["robot0_eef_pos"],
                                        Goal.from_dict(episode.goal))
    episode.extra_attrs = {**episode.extra_attrs, "teleop": device_name}
    return episode


class TeleopSource:
    """Chunks for robots.client.RobotClient from an operator instead of a policy server (`vla robot --teleop`):
    one action per request, through the client's safety filter and watchdog like a policy's. It speaks the
    part of PolicyConnection the client uses (session_id, start, act, close)."""

    def __init__(self, teleop: EndEffectorTeleop, control_hz: float, clock=time.monotonic):
        self.teleop, self.horizon_ms = teleop, 2000.0 / control_hz  # the action and one tick of slack
        self.clock = clock
        self.session_id: str | None = None

    def start(self, instruction: str) -> str:
        self.teleop.reset(instruction)
        self.session_id = "teleop"
        return self.session_id

    def act(self, images: dict, joints, gripper: float):
        from robots.connection import ChunkReply

        chunk = self.teleop.act({"robot0_joint_pos": np.asarray(joints), **images})
        return ChunkReply(chunk.actions, "", 0.0, self.horizon_ms, self.clock())

    def close(self) -> None:
        self.session_id = None
