"""How action chunks are expressed to the model: absolute joint targets or deltas.

"absolute": the model predicts the commanded joint positions as recorded.
"delta":    the model predicts every joint target of a chunk relative to the joint positions
            measured when the chunk was asked for (pi0-style chunk-relative actions); the
            gripper command stays absolute. Deltas span a much narrower range than the
            joints themselves, so the 256 action bins resolve them ~10x more finely, and the
            model no longer has to read the arm's exact pose from images to move it.

The first `action_dim - 1` action dimensions are joint targets matching the first
`action_dim - 1` proprio-state dimensions (robot0_joint_pos leads the state keys); the last
action dimension is the gripper.
"""

from __future__ import annotations

import numpy as np

ACTION_MODES = ("absolute", "delta")


def check_mode(mode: str) -> None:
    if mode not in ACTION_MODES:
        raise ValueError(f"action mode must be one of {ACTION_MODES}, got {mode!r}")


def to_model(actions: np.ndarray, state: np.ndarray, mode: str) -> np.ndarray:
    """Robot-unit actions (..., K, A) taken from state (..., S) -> the model's targets."""
    if mode == "absolute":
        return actions
    joints = actions.shape[-1] - 1
    out = np.array(actions, dtype=np.float64, copy=True)
    out[..., :joints] -= np.asarray(state)[..., None, :joints]
    return out


def to_robot(actions: np.ndarray, state: np.ndarray, mode: str) -> np.ndarray:
    """The model's (..., K, A) output for state (..., S) -> robot-unit actions (joint targets)."""
    if mode == "absolute":
        return actions
    joints = actions.shape[-1] - 1
    out = np.array(actions, dtype=np.float64, copy=True)
    out[..., :joints] += np.asarray(state)[..., None, :joints]
    return out
