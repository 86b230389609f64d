"""The policy contract spoken by simulation, the gRPC server and every wrapper.

Kept free of heavy imports: numpy only.

An observation is a plain dict:
    "<camera>_image"        (H, W, 3) uint8, row 0 = top of the image
    "robot0_joint_pos"      (7,) float, radians
    "robot0_gripper_qpos"   (2,) float, finger joint positions in metres
    "instruction"           str, the language goal
A policy answers with an `ActionChunk`: K future actions in robot units,
each (7 absolute joint position targets, gripper in [0, 1]; 0 = open, 1 = closed).

Optional capability: `intervene(text, kind="auto") -> Intervention`, an operator's correction
mid-episode (a subtask to pursue now, or a new instruction) that the next act() pursues; kind is
"subtask", "instruction" or "auto" (the policy decides). A policy that cannot take one raises
ValueError with a one-line reason. reset() forgets every intervention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

Observation = Mapping[str, Any]


@dataclass(frozen=True)
class ActionChunk:
    """K future actions (K, A) float32, and the subtask the policy is pursuing."""

    actions: np.ndarray
    subtask: str = ""

    def __post_init__(self) -> None:
        actions = np.asarray(self.actions, dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] == 0:
            raise ValueError(f"ActionChunk.actions must be (K, A) with K >= 1, got shape {actions.shape}")
        if not np.all(np.isfinite(actions)):
            raise ValueError("ActionChunk.actions contains NaN or Inf")
        object.__setattr__(self, "actions", actions)


@runtime_checkable
class Policy(Protocol):
    """reset() at the start of every episode, then act() once per chunk."""

    def reset(self, instruction: str) -> None: ...

    def act(self, observation: Observation) -> ActionChunk: ...


INTERVENTION_KINDS = ("auto", "subtask", "instruction")


@dataclass(frozen=True)
class Intervention:
    """What a policy made of an intervention: the kind it applied ("subtask" or "instruction"), the text
    it pursues, and one line saying what happens next."""

    kind: str
    text: str
    description: str = ""


@runtime_checkable
class Intervenable(Protocol):
    """A policy an operator can correct mid-episode (see the module docstring)."""

    def intervene(self, text: str, kind: str = "auto") -> Intervention: ...


def takes_interventions(policy: object) -> bool:
    return callable(getattr(policy, "intervene", None))


def intervention_text(text: str, kind: str) -> str:
    """The text with its whitespace collapsed; ValueError for an empty text or an unknown kind."""
    if kind not in INTERVENTION_KINDS:
        raise ValueError(f"intervention kind must be one of {', '.join(INTERVENTION_KINDS)}, got {kind!r}")
    cleaned = " ".join(str(text).split())
    if not cleaned:
        raise ValueError("an intervention needs a text: a subtask phrase or an instruction")
    return cleaned
