"""Goal keypoints: where the cubes the instruction names are, in each camera (`vla train --goal-keypoints`).

The grid tokens average each cell of a camera's feature map, so which colour sits where inside a
cell - and, with two cubes in one cell, which is which - is mixed before the language model reads a
word of the instruction; the object head of such a model finds the named cube among three no better
than chance until the arm's motion gives it away (README, Results). Here the words choose what to look
for before anything is pooled: a GRU reads the instruction and emits one query per goal slot (the cube
to pick, the cube to put it on); each query scores every 4x4-pixel patch of a camera's first feature
map (where colour is still close to the pixels), and the softmax-weighted mean of the patches'
coordinates and features - a spatial soft-argmax (Levine et al. 2016) whose query comes from
language instead of being fixed - becomes one token per camera and slot.

Learned only through the actions and the object head, the attention stays on the same patch whatever
colour the words name (README, Results); `keypoint_loss` (`--goal-keypoint-loss`) supervises it
directly: cross-entropy towards the patch where the simulator puts the goal's cube in that image.
"""

from __future__ import annotations

import torch
from torch import nn

from vla.tiny_model import pixel_coordinates

GOAL_SLOTS = 2  # the cube to pick, the cube to put it on
INITIAL_LOG_TEMPERATURE = -2.0  # sharper than a plain scaled dot product: a uniform start carries no position


class GoalKeypoints(nn.Module):
    def __init__(self, channels: int, hidden: int, n_cameras: int):
        super().__init__()
        self.reader = nn.GRU(hidden, hidden, batch_first=True)
        self.queries = nn.Linear(hidden, GOAL_SLOTS * channels)
        self.log_temperature = nn.Parameter(torch.tensor(INITIAL_LOG_TEMPERATURE))
        self.projector = nn.Sequential(nn.Linear(2 + channels, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.position = nn.Parameter(torch.zeros(n_cameras, GOAL_SLOTS, hidden))

    def read(self, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, hidden) embedded instruction words, padded after `lengths` (B,) -> (B, slots, channels) queries."""
        packed = nn.utils.rnn.pack_padded_sequence(words, lengths.clamp(min=1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, last = self.reader(packed)
        return self.queries(last[0]).unflatten(1, (GOAL_SLOTS, -1))

    def logits(self, feature_maps: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """(B, cameras, channels, H, W) and (B, slots, channels) -> (B, cameras, slots, H, W) scores of the cells."""
        scale = feature_maps.shape[2] ** 0.5 * self.log_temperature.exp()
        return torch.einsum("bsc,bnchw->bnshw", queries, feature_maps) / scale

    def attend(self, feature_maps: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """-> (B, cameras, slots, H*W) weights over the cells."""
        return self.logits(feature_maps, queries).flatten(3).float().softmax(-1)

    def forward(self, feature_maps: torch.Tensor, queries: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> ((B, cameras * slots, hidden) tokens: each slot's expected (x, y) in [-1, 1] and mean feature;
        (B, cameras, slots, H, W) the attention's logits, for `keypoint_loss`)."""
        logits = self.logits(feature_maps, queries)
        weights = logits.flatten(3).float().softmax(-1)
        h, w = feature_maps.shape[-2:]
        xy = weights @ pixel_coordinates(h, w, feature_maps.device).flatten(1).T  # (B, N, S, 2)
        features = torch.einsum("bnsp,bncp->bnsc", weights, feature_maps.flatten(3).float())
        tokens = self.projector(torch.cat([xy, features], -1).to(feature_maps.dtype)) + self.position
        return tokens.flatten(1, 2), logits


def keypoint_loss(logits: torch.Tensor, pixels: torch.Tensor, image_size: int) -> tuple[torch.Tensor, dict]:
    """Cross-entropy of each camera and slot's attention (B, N, S, H, W logits) towards the cell holding
    the goal cube's pixel (B, N, S, 2) in an `image_size` square image; NaN pixels (cube unseen, no base
    cube) are skipped. Metrics: the loss and how far (pixels) the attention's expected position is off."""
    h, w = logits.shape[-2:]
    known = torch.isfinite(pixels).all(-1)
    if not known.any():
        return logits.sum() * 0.0, {}
    cell = image_size / w, image_size / h
    points = pixels[known].to(logits.device)
    column = (points[:, 0] / cell[0]).floor().clamp(0, w - 1)
    row = (points[:, 1] / cell[1]).floor().clamp(0, h - 1)
    scores = logits[known].flatten(1).float()
    loss = nn.functional.cross_entropy(scores, (row * w + column).long())
    centres = cell_centres(h, w, image_size).to(logits.device)
    expected = scores.softmax(-1) @ centres
    error = (expected - points).norm(dim=-1).mean()
    return loss, {"keypoint_loss": float(loss.detach()), "keypoint_error_px": float(error.detach())}


def cell_centres(h: int, w: int, image_size: int) -> torch.Tensor:
    """(H*W, 2) pixel x, y of the centre of each cell of an H x W grid over an `image_size` square image."""
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) * image_size / h, (torch.arange(w) + 0.5) * image_size / w,
                            indexing="ij")
    return torch.stack([xs, ys], -1).flatten(0, 1)
