"""A live teleop session: a person drives the simulated Panda with a device (sim.teleop_devices) through
EndEffectorTeleop, watches the live view (sim.teleop_view) and keeps, discards or re-records takes with keys
(sim.teleop_keys). Kept takes are written like record_teleop's (sim.teleop.write_teleop_episode).

The loop runs at the control rate (20 Hz): each tick it reads the keys (waiting out the rest of the tick),
applies the action, then, while recording, steps the simulator with the device's command and records the
step; while stopped, the scene is frozen and the device is read and ignored (its motion is not saved up).
"""

from __future__ import annotations

import time
from typing import Callable, Protocol

import numpy as np

from sim.rollout import EpisodeRecorder
from sim.teleop import EndEffectorTeleop, TeleopReport, teleop_dataset, write_teleop_episode
from sim.teleop_command import Device
from sim.teleop_keys import Action, Effect, SessionState, action_for_key, on_action, on_step, on_take_end
from sim.teleop_view import compose_frame


class View(Protocol):
    def show(self, frame: np.ndarray) -> None:
        """Show a (H, W, 3) BGR frame."""

    def poll_key(self, wait_ms: int) -> int:
        """The key pressed within wait_ms (a cv2.waitKeyEx code), -1 for none."""


class Take:
    """The episode being driven: its latest observation and what has been recorded of it."""

    def __init__(self, env, teleop: EndEffectorTeleop, seed: int):
        self.env, self.teleop = env, teleop
        self.observation, _ = env.reset(seed=seed)
        teleop.reset(env.instruction)
        self.recorder = EpisodeRecorder()

    def step(self) -> bool:
        """Drive one control step with the device's command and record it; True when the episode is over."""
        action = self.teleop.act(self.observation).actions[0]
        state = self.env.mujoco_state()
        observation, reward, terminated, truncated, _ = self.env.step(action)
        self.recorder.add(self.observation, state, action, reward, terminated or truncated)
        self.observation = observation
        return terminated or truncated

    def episode(self):
        """The recorded take as an Episode (subtasks are labelled when it is written)."""
        return self.recorder.to_episode(self.env, [""] * len(self.recorder.actions), self.env.is_success())


def run_teleop_session(task: str, device: Device, episodes: int, out: str, view: View, *, seed: int = 0,
                       append: bool = False, keep_failures: bool = False, env_config=None,
                       instruction: str | None = None, device_name: str | None = None, on_episode=None,
                       clock: Callable[[], float] = time.monotonic) -> TeleopReport:
    """Run the session until `episodes` takes are kept or the operator quits. Each kept take is written to `out`
    (marked teleop=device_name, default: the device's class name); `instruction` is recorded instead of the
    task's phrasing, as in record_teleop. on_episode({"seed", "success", "steps", "kept"}, kept) is called for
    every take kept or discarded."""
    from sim.env import EnvConfig, VlaEnv

    config = env_config or EnvConfig()
    name = device_name or type(device).__name__
    period_s, log = 1.0 / config.control_hz, []
    state = SessionState(seed=seed)
    with VlaEnv(task, config) as env, teleop_dataset(out, task, config, append=append) as writer:
        teleop = EndEffectorTeleop(env, device)
        take = Take(env, teleop, seed)
        tick = clock()
        while state.kept < episodes:
            view.show(compose_frame(take.observation, state, instruction=_shown_instruction(env, instruction),
                                    episodes=episodes, max_steps=env.max_steps))
            wait_ms = int(1000 * max(0.0, period_s - (clock() - tick)))
            action = _operator_action(view.poll_key(wait_ms), device)
            tick = clock()
            previous, (state, effect) = state, on_action(state, action, keep_failures)
            if effect is Effect.QUIT:
                break
            if effect is Effect.WRITE_AND_START:
                write_teleop_episode(writer, take.episode(), name, instruction)
            if effect is not Effect.NONE and previous.steps:
                log.append({"seed": previous.seed, "success": previous.success, "steps": previous.steps,
                            "kept": effect is Effect.WRITE_AND_START})
                if on_episode:
                    on_episode(log[-1], state.kept)
            if effect is not Effect.NONE:
                take = Take(env, teleop, state.seed)
            elif state.recording:
                state = _record_step(take, state)
            else:
                device.read()  # stopped: what the operator does now is not saved up for later
    return TeleopReport(str(out), state.kept, len(log) - state.kept, log)


def _record_step(take: Take, state: SessionState) -> SessionState:
    over = take.step()
    state = on_step(state)
    return on_take_end(state, take.env.is_success()) if over else state


def _operator_action(key: int, device: Device) -> Action | None:
    """The key's action; without one, the device's own reset button (robosuite devices) asks for a new scene."""
    action = action_for_key(key)
    take_reset_request = getattr(device, "take_reset_request", None)
    if action is None and take_reset_request is not None and take_reset_request():
        return Action.NEW_SCENE
    return action


def _shown_instruction(env, instruction: str | None) -> str:
    return env.instruction if not instruction else f"{env.instruction}   (recorded as: {instruction})"
