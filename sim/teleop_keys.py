"""The keys of a live teleop session and what they do, as a pure state machine (no display, no simulator).

Keys (chosen apart from robosuite's keyboard driver, which listens to every key: arrows . ; e r y h o p
space q b s =):
    Enter  start / stop recording (stopped: the scene is frozen, the device is ignored)
    k      keep the take: write it and go on to the next scene (a take without success needs --keep-failures)
    d      discard the take and go on to the next scene
    a      again: discard the take and re-record the same scene (same seed)
    n      new scene (next seed); a take in progress is discarded
    Esc    quit (a take in progress is not written)
The device's own reset button acts as `n`. Scenes use seeds SEED, SEED + 1, ... like `vla collect`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum


class Action(Enum):
    TOGGLE_RECORDING = "start/stop"
    KEEP = "keep"
    DISCARD = "discard"
    RERECORD = "re-record"
    NEW_SCENE = "new scene"
    QUIT = "quit"


class Effect(Enum):
    """What the session loop has to do after a transition."""

    NONE = "none"
    WRITE_AND_START = "write the take, then start the scene of state.seed"
    START = "start the scene of state.seed"
    QUIT = "quit"


KEY_ACTIONS = {13: Action.TOGGLE_RECORDING, 10: Action.TOGGLE_RECORDING, ord("k"): Action.KEEP,
               ord("d"): Action.DISCARD, ord("a"): Action.RERECORD, ord("n"): Action.NEW_SCENE, 27: Action.QUIT}
KEY_HELP = "Enter start/stop | k keep | d discard | a again | n new scene | Esc quit"


@dataclass(frozen=True)
class SessionState:
    """Where the operator is: the scene's seed, whether the take is recording, whether it has ended
    (success or the step limit), its length, and the session's counts."""

    seed: int
    recording: bool = False
    ended: bool = False
    success: bool = False
    steps: int = 0
    kept: int = 0
    discarded: int = 0
    message: str = ""


def action_for_key(key: int) -> Action | None:
    """The action of a cv2.waitKeyEx code (-1: no key), None for keys that are not the session's. Codes are
    compared whole: cv2.waitKey's low byte would make e.g. Print (0xFF61) an `a`."""
    return KEY_ACTIONS.get(key)


def on_action(state: SessionState, action: Action | None, keep_failures: bool) -> tuple[SessionState, Effect]:
    """The state after the operator's action, and what the loop must do."""
    if action is None:
        return state, Effect.NONE
    if action is Action.QUIT:
        return replace(state, recording=False, message="quit"), Effect.QUIT
    if action is Action.TOGGLE_RECORDING:
        if state.ended:
            return replace(state, message="the take is over: k keep, d discard, a again"), Effect.NONE
        return replace(state, recording=not state.recording, message=""), Effect.NONE
    if action is Action.KEEP:
        return _keep(state, keep_failures)
    if action is Action.DISCARD and not state.steps:
        return replace(state, message="nothing recorded to discard (n: new scene)"), Effect.NONE
    next_seed = state.seed if action is Action.RERECORD else state.seed + 1
    return _new_take(state, next_seed, discarded=state.discarded + (state.steps > 0)), Effect.START


def on_step(state: SessionState) -> SessionState:
    """One recorded control step."""
    return replace(state, steps=state.steps + 1)


def on_take_end(state: SessionState, success: bool) -> SessionState:
    """The episode ended by itself: the task succeeded or the step limit was reached."""
    verdict = "success: k keep, d discard" if success else "step limit, no success: d discard, a again"
    return replace(state, recording=False, ended=True, success=success, message=verdict)


def _keep(state: SessionState, keep_failures: bool) -> tuple[SessionState, Effect]:
    if not state.steps:
        return replace(state, message="nothing recorded to keep (Enter: start recording)"), Effect.NONE
    if not (state.success or keep_failures):
        return replace(state, message="not kept: no success (d discard, a again; --keep-failures keeps these)"), \
            Effect.NONE
    return _new_take(state, state.seed + 1, kept=state.kept + 1), Effect.WRITE_AND_START


def _new_take(state: SessionState, seed: int, **counts) -> SessionState:
    return replace(state, seed=seed, recording=False, ended=False, success=False, steps=0, message="", **counts)
