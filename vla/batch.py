"""The model-facing batch and the contract every VLA model (tiny or Hugging Face) keeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from vla.config import DECODING_MODES


@dataclass
class Batch:
    """One training or inference batch.

    images:      (B, N_cam, 3, H, W) uint8, row 0 = top, cameras in config order
    state_ids:   (B, S) int64 proprio state, normalized to [-1, 1] and tokenized as action ids
    instructions: B language goals
    subtasks:    B subtask phrases ("" when the policy is flat)
    action_ids:  (B, K, A) int64 target action token ids (None at inference)
    plan_targets: (B,) int64 index of the current subtask phrase for the planner (-1: none)
    actions:     (B, K, A) float32 the same targets normalized to [-1, 1], unbinned (None at inference)
    objects:     (B, 6) float32 the goal's target and base cube minus the gripper, in 5 cm (NaN: no base cube);
                 privileged, for the auxiliary loss in training only (None otherwise)
    action_rows: (B,) bool rows whose actions are trained (None: all); the others train only the object
                 head (relabelled goals, sim/goal_relabel.py)
    goal_pixels: (B, N_cam, 2, 2) float32 pixel x, y of the goal's target and base cube in each image (NaN:
                 unseen or no base cube); privileged, for the goal keypoints' loss in training only
    """

    images: torch.Tensor
    state_ids: torch.Tensor
    instructions: list[str]
    subtasks: list[str]
    action_ids: torch.Tensor | None = None
    plan_targets: torch.Tensor | None = None
    actions: torch.Tensor | None = None
    objects: torch.Tensor | None = None
    action_rows: torch.Tensor | None = None
    goal_pixels: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "Batch":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return Batch(move(self.images), move(self.state_ids), self.instructions, self.subtasks,
                     move(self.action_ids), move(self.plan_targets), move(self.actions), move(self.objects),
                     move(self.action_rows), move(self.goal_pixels))

    @property
    def size(self) -> int:
        return len(self.instructions)


class VlaModel(Protocol):
    """What training, checkpoints and inference need from a model."""

    chunk_size: int  # K
    action_dim: int  # A

    def loss(self, batch: Batch, mode: str) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy on action tokens only; metrics include 'accuracy' (action-token)."""

    def predict_action_ids(self, batch: Batch, mode: str) -> torch.Tensor:
        """(B, K, A) action token ids; 'autoregressive' uses a KV cache and only action ids."""

    def parallel_action_logits(self, batch: Batch) -> torch.Tensor:
        """(B, K*A, n_bins) logits over the action ids, one forward pass (the 'parallel' head)."""

    # A model trained with 'regression' decoding (tiny backbone) also has
    # predict_actions(batch) -> (B, K, A) normalized actions in [-1, 1] from its continuous head.


def check_decoding(mode: str, trained: str) -> None:
    """A checkpoint trained with `trained` decoding can be decoded with `mode`: the two token modes share
    one head; the regression head is another."""
    if mode not in DECODING_MODES:
        raise ValueError(f"decoding mode must be one of {DECODING_MODES}, got {mode!r}")
    if (mode == "regression") != (trained == "regression"):
        raise ValueError(f"this checkpoint was trained with {trained!r} decoding and cannot decode {mode!r}: "
                         "the regression head and the action tokens are different outputs; "
                         "retrain with `vla train --decoding ...` or drop the mode")


def action_regression_loss(predicted: torch.Tensor, targets: torch.Tensor, tokenizer
                           ) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 between predicted and target normalized actions, both (B, K, A); 'accuracy' is the share that
    falls into the target's action bin, so it reads like the token models'."""
    loss = torch.nn.functional.l1_loss(predicted.float(), targets.float())
    same_bin = tokenizer.encode(predicted.detach().float().cpu().numpy()) == \
        tokenizer.encode(targets.float().cpu().numpy())
    return loss, {"loss": float(loss.detach()), "accuracy": float(same_bin.mean())}


def action_token_loss(action_logits: torch.Tensor, target_ids: torch.Tensor, first_action_id: int
                      ) -> tuple[torch.Tensor, dict[str, float]]:
    """action_logits (B, K*A, n_bins) over the action-id slice; target_ids (B, K, A)."""
    targets = (target_ids - first_action_id).reshape(target_ids.shape[0], -1)
    loss = torch.nn.functional.cross_entropy(action_logits.reshape(-1, action_logits.shape[-1]).float(),
                                             targets.reshape(-1))
    accuracy = (action_logits.argmax(-1) == targets).float().mean()
    return loss, {"loss": float(loss.detach()), "accuracy": float(accuracy)}
