"""The tiny default VLA: conv image encoder + MLP projector + a small Llama decoder.

Sequence (fixed length, so train and inference see the same positions):
    [camera tokens: N_cam x (grid^2 + keypoints/8)] [text: MAX_TEXT word ids, padded] [state: S action-ids]
    then the action part:
      autoregressive: the K*A action ids, teacher-forced (logit t predicts id t+1)
      parallel:       K*A learned action-query embeddings, one forward pass predicts all
      regression:     the same queries, each read out by an MLP as one continuous action value,
                      trained with L1 on the normalized targets (OpenVLA-OFT) instead of 256 bins;
                      with gripper_tokens only the joints, the gripper queries stay on the token head
The action ids are the last n_bins ids of the vocabulary (OpenVLA layout).
With an object token (predict, then act: embodied chain-of-thought does it with text and boxes), one more
token sits between the state and the action part: the goal's cube offsets from the gripper that the object
head reads off the prefix's last token, so the actions are conditioned on six numbers instead of having to
find the cube in the image tokens themselves.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from vla.batch import Batch, action_regression_loss, action_token_loss
from vla.config import DataConfig, TinyModelConfig
from vla.data import OBJECT_SCALE
from vla.text_tokenizer import WordTokenizer
from vla.tokenizer import ActionTokenizer

MAX_TEXT = 24
TEACHER_NOISE_CM = 1.0  # object_token "teacher": std of the noise on the recorded offsets fed in training


class ConvImageEncoder(nn.Module):
    """(B, 3, H, W) uint8 -> (B, grid*grid [+ keypoints/8], hidden) tokens.

    With `coordinates` the image gets two more input channels, its x and y in [-1, 1] (CoordConv, Liu
    et al. 2018): convolutions are translation-equivariant and the pooling to grid x grid averages over
    each cell, so without them where an object sits inside a cell (32 px at 128 px and grid 4; the
    whole ±3 cm of the lift cube is 4-6 px of the front camera) cannot reach the tokens."""

    def __init__(self, channels: tuple[int, ...], grid: int, hidden: int, keypoints: int = 0,
                 coordinates: bool = False):
        super().__init__()
        self.coordinates = coordinates
        layers, prev = [], 5 if coordinates else 3
        for i, width in enumerate(channels):  # a 4x4 patchify stem, then stride-2 3x3 convs
            conv = nn.Conv2d(prev, width, 4, stride=4) if i == 0 else nn.Conv2d(prev, width, 3, stride=2, padding=1)
            layers += [conv, nn.GroupNorm(8, width), nn.GELU()]
            prev = width
        self.stem = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(grid))
        self.projector = nn.Sequential(nn.Linear(prev, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.position = nn.Parameter(torch.zeros(grid * grid, hidden))
        self.keypoints = KeypointTokens(prev, keypoints, hidden) if keypoints else None

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.encode(images)[0]

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(tokens, the stem's first feature map: (B, channels[0], H/4, W/4), one cell per 4x4 patch)."""
        x = images.float() / 127.5 - 1.0
        if self.coordinates:
            x = torch.cat([x, coordinate_channels(x)], dim=1)
        patches = self.stem[:3](x)  # the 4x4 patchify conv, its norm and activation
        feature_map = self.stem[3:-1](patches)
        features = self.stem[-1](feature_map).flatten(2).transpose(1, 2)  # (B, grid^2, C)
        tokens = self.projector(features) + self.position
        if self.keypoints is not None:
            tokens = torch.cat([tokens, self.keypoints(feature_map)], dim=1)
        return tokens, patches


def pixel_coordinates(h: int, w: int, device) -> torch.Tensor:
    """(2, H, W): each pixel's x and y, from -1 (left / top) to 1."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=device), torch.linspace(-1, 1, w, device=device),
                            indexing="ij")
    return torch.stack([xs, ys])


def coordinate_channels(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, 2, H, W): the pixel coordinates as two channels."""
    b, _, h, w = images.shape
    return pixel_coordinates(h, w, images.device).to(images.dtype).expand(b, -1, -1, -1)


KEYPOINTS_PER_TOKEN = 8


class KeypointTokens(nn.Module):
    """Spatial softmax (Levine et al., 2016): K learned heat maps over the encoder's feature map, each
    reduced to its expected (x, y); every 8 keypoints become one token. The pooled grid tokens say what
    is where to within a cell; these say where, to a fraction of one."""

    def __init__(self, channels: int, keypoints: int, hidden: int):
        super().__init__()
        check_keypoints(keypoints)
        self.heat_maps = nn.Conv2d(channels, keypoints, 1)
        self.log_temperature = nn.Parameter(torch.zeros(()))
        self.projector = nn.Sequential(nn.Linear(2 * KEYPOINTS_PER_TOKEN, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.position = nn.Parameter(torch.zeros(keypoints // KEYPOINTS_PER_TOKEN, hidden))

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        points = spatial_soft_argmax(self.heat_maps(feature_map) / self.log_temperature.exp())  # (B, K, 2)
        groups = points.unflatten(1, (-1, KEYPOINTS_PER_TOKEN)).flatten(2)  # (B, K/8, 16)
        return self.projector(groups) + self.position


def spatial_soft_argmax(heat_maps: torch.Tensor) -> torch.Tensor:
    """(B, K, H, W) logits -> (B, K, 2) expected (x, y) under each map's softmax; the image spans [-1, 1]."""
    h, w = heat_maps.shape[-2:]
    weights = heat_maps.flatten(2).float().softmax(-1)  # (B, K, H*W)
    return weights @ pixel_coordinates(h, w, heat_maps.device).flatten(1).T


def check_keypoints(keypoints: int) -> None:
    if keypoints < 0 or keypoints % KEYPOINTS_PER_TOKEN:
        raise ValueError(f"keypoints must be a multiple of {KEYPOINTS_PER_TOKEN} (0: none), got {keypoints}; "
                         "pick e.g. --set tiny.keypoints=32")


class TinyVla(nn.Module):
    def __init__(self, config: TinyModelConfig, data: DataConfig, text_tokenizer: WordTokenizer,
                 regression: bool = False):
        super().__init__()
        if text_tokenizer.vocab_size != config.text_vocab_size:
            raise ValueError(f"text tokenizer has {text_tokenizer.vocab_size} words, the model config "
                             f"{config.text_vocab_size}: tokenizer.json and config.json do not belong together")
        self.config, self.data, self.text_tokenizer = config, data, text_tokenizer
        self.chunk_size, self.action_dim = data.chunk_size, data.action_dim
        self.action_tokenizer = ActionTokenizer(config.vocab_size, config.n_bins)
        hidden = config.hidden_size
        self.encoder = ConvImageEncoder(config.vision_channels, config.image_grid, hidden, config.keypoints,
                                        config.coordinate_channels)
        self.camera_embedding = nn.Parameter(torch.zeros(len(data.cameras), 1, hidden))
        self.action_queries = nn.Parameter(torch.randn(self.chunk_size * self.action_dim, hidden) * 0.02)
        phrases = config.planner_phrases
        self.planner_head = nn.Linear(hidden, len(phrases)) if phrases else None
        self.regression_head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(),
                                             nn.Linear(hidden, 1)) if regression else None
        self.object_head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(),
                                         nn.Linear(hidden, 6)) if config.object_loss > 0 else None
        self.object_embedding = nn.Sequential(nn.Linear(6, hidden), nn.GELU(), nn.Linear(hidden, hidden)) \
            if config.object_token else None
        self.goal_keypoints = _goal_keypoints(config, len(data.cameras))
        self.lm = LlamaForCausalLM(LlamaConfig(
            vocab_size=config.vocab_size, hidden_size=hidden, intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
            num_key_value_heads=config.num_heads, max_position_embeddings=config.max_positions,
            tie_word_embeddings=True,
        ))

    # -- sequence assembly ---------------------------------------------------------------
    def prefix_embeddings(self, batch: Batch) -> torch.Tensor:
        """(B, P, hidden): camera tokens [goal keypoint tokens], text tokens, state tokens."""
        return self._prefix(batch)[0]

    def _prefix(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(the prefix embeddings, the goal keypoints' attention logits or None without goal keypoints)."""
        b, n_cam = batch.images.shape[:2]
        tokens, feature_maps = self.encoder.encode(batch.images.flatten(0, 1))
        parts = [(tokens.unflatten(0, (b, n_cam)) + self.camera_embedding).flatten(1, 2)]
        keypoint_logits = None
        if self.goal_keypoints is not None:
            keypoint_tokens, keypoint_logits = self._goal_keypoint_tokens(batch, feature_maps.unflatten(0, (b, n_cam)))
            parts.append(keypoint_tokens)
        text_ids = batch_text_ids(batch, self.text_tokenizer.prompt_ids, batch.images.device)
        parts.append(self.lm.get_input_embeddings()(torch.cat([text_ids, batch.state_ids], dim=1)))
        return torch.cat(parts, dim=1), keypoint_logits

    def goal_keypoint_logits(self, batch: Batch) -> torch.Tensor:
        """(B, cameras, slots, H, W): where each camera's goal keypoints look (before the softmax)."""
        if self.goal_keypoints is None:
            raise ValueError("this checkpoint has no goal keypoints (trained without --goal-keypoints)")
        return self._prefix(batch)[1]

    def _goal_keypoint_tokens(self, batch: Batch, feature_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The instruction's words (not the subtask's) pick what each camera's goal keypoints look for."""
        ids = padded_text_ids([self.text_tokenizer.encode(text) for text in batch.instructions], feature_maps.device)
        queries = self.goal_keypoints.read(self.lm.get_input_embeddings()(ids), (ids != 0).sum(1))
        return self.goal_keypoints(feature_maps, queries.to(feature_maps.dtype))

    # -- training ------------------------------------------------------------------------
    def loss(self, batch: Batch, mode: str):
        """Action-token loss (L1 for regression); plus the planner's loss on rows prompted without a subtask."""
        prefix, keypoint_logits = self._prefix(batch)
        n_actions = self.chunk_size * self.action_dim
        if mode == "autoregressive":
            tail = self.lm.get_input_embeddings()(batch.action_ids.flatten(1)[:, :-1])
        else:
            tail = self.action_queries.expand(prefix.shape[0], -1, -1)
        teacher = batch.objects if self.training and self.config.object_token == "teacher" else None
        hidden = self._hidden_states(prefix, tail, teacher)
        loss, metrics = self._action_loss(hidden[:, -n_actions:], batch, mode)
        if self.planner_head is not None and batch.plan_targets is not None:
            plan_loss, plan_metrics = self._planner_loss(hidden[:, prefix.shape[1] - 1], batch)
            loss = loss + plan_loss
            metrics.update(plan_metrics)
        if self.object_head is not None and batch.objects is not None:
            object_loss, object_metrics = self._object_loss(hidden[:, prefix.shape[1] - 1], batch.objects)
            loss = loss + self.config.object_loss * object_loss
            metrics.update(object_metrics)
        if self.config.goal_keypoint_loss and batch.goal_pixels is not None:
            from vla.goal_keypoints import keypoint_loss

            point_loss, point_metrics = keypoint_loss(keypoint_logits, batch.goal_pixels, self.data.image_size)
            loss = loss + self.config.goal_keypoint_loss * point_loss
            metrics.update(point_metrics)
        return loss, metrics

    def _hidden_states(self, prefix: torch.Tensor, tail: torch.Tensor,
                       recorded_objects: torch.Tensor | None = None) -> torch.Tensor:
        """(B, P [+ 1] + T, hidden) over the prefix, the object token (when the model has one) and the tail.
        The token needs the prefix's last hidden state, so the prefix runs first and the rest reuses its KV cache.
        It carries the object head's prediction (detached: the head learns from its own loss), or in teacher
        mode the recorded offsets plus noise wherever they are known."""
        if self.object_embedding is None:
            return self.lm.model(inputs_embeds=torch.cat([prefix, tail], 1)).last_hidden_state
        first = self.lm.model(inputs_embeds=prefix, use_cache=True)
        offsets = self.object_head(first.last_hidden_state[:, -1]).detach()
        if recorded_objects is not None:
            offsets = noisy_recorded_offsets(recorded_objects.to(offsets), offsets)
        token = self.object_embedding(offsets.to(prefix.dtype))[:, None]
        rest = self.lm.model(inputs_embeds=torch.cat([token, tail], 1),
                             past_key_values=first.past_key_values).last_hidden_state
        return torch.cat([first.last_hidden_state, rest], 1)

    def _action_loss(self, query_hidden: torch.Tensor, batch: Batch, mode: str):
        """The action loss over the rows whose actions are trained (batch.action_rows; None: all)."""
        if batch.action_rows is not None:
            rows = batch.action_rows.to(query_hidden.device)
            if not rows.any():
                return query_hidden.sum() * 0.0, {}
            query_hidden = query_hidden[rows]
            batch = replace(batch, action_ids=batch.action_ids[rows],
                            actions=None if batch.actions is None else batch.actions[rows])
        if mode == "regression":
            return self._regression_loss(query_hidden, batch)
        return action_token_loss(self._action_slice(self.lm.lm_head(query_hidden)), batch.action_ids,
                                 self.action_tokenizer.first_id)

    def _regression_loss(self, query_hidden: torch.Tensor, batch: Batch):
        """L1 on every action; with gripper_tokens, L1 on the joints plus cross-entropy on the gripper's bins."""
        predicted = self._regress(query_hidden)
        if not self.config.gripper_tokens:
            return action_regression_loss(predicted, batch.actions, self.action_tokenizer)
        loss, metrics = action_regression_loss(predicted[..., :-1], batch.actions[..., :-1], self.action_tokenizer)
        gripper_loss, gripper = action_token_loss(self._gripper_logits(query_hidden), batch.action_ids[..., -1:],
                                                  self.action_tokenizer.first_id)
        metrics.update(loss=metrics["loss"] + gripper["loss"], joint_l1=metrics["loss"],
                       gripper_accuracy=gripper["accuracy"])
        return loss + gripper_loss, metrics

    def _gripper_logits(self, query_hidden: torch.Tensor) -> torch.Tensor:
        """(B, K*A, hidden) -> (B, K, n_bins): the token head on each step's gripper query."""
        gripper_hidden = query_hidden.view(query_hidden.shape[0], self.chunk_size, self.action_dim, -1)[:, :, -1]
        return self._action_slice(self.lm.lm_head(gripper_hidden))

    def _planner_loss(self, last_prefix_hidden: torch.Tensor, batch: Batch):
        """Cross-entropy over the subtask phrases, on rows prompted without a subtask."""
        rows = torch.tensor([not s for s in batch.subtasks], device=last_prefix_hidden.device)
        targets = batch.plan_targets.to(last_prefix_hidden.device)
        rows = rows & (targets >= 0)
        if not rows.any():
            return last_prefix_hidden.sum() * 0.0, {}
        logits = self.planner_head(last_prefix_hidden[rows])
        loss = nn.functional.cross_entropy(logits.float(), targets[rows])
        accuracy = (logits.argmax(-1) == targets[rows]).float().mean()
        return loss, {"plan_loss": float(loss.detach()), "plan_accuracy": float(accuracy)}

    def _object_loss(self, last_prefix_hidden: torch.Tensor, targets: torch.Tensor):
        """Auxiliary loss: where the goal's target and base cube are from the gripper (5 cm units), read
        from the prefix's last token, which has seen the cameras, the goal and the state; Huber, so the
        far frames of an approach do not drown the near ones. Privileged sim state, training only: it makes
        the image encoder localize the cubes, which the action loss alone barely asks of it."""
        predicted = self.object_head(last_prefix_hidden).float().view(-1, 2, 3)
        targets = targets.to(predicted.device).view(-1, 2, 3)
        known = torch.isfinite(targets).all(-1)  # (B, 2): no base cube on pick goals
        error = (predicted - targets.nan_to_num())[known]
        loss = nn.functional.smooth_l1_loss(error, torch.zeros_like(error), reduction="none").sum(-1).mean()
        centimetres = error.detach().norm(dim=-1).mean() * OBJECT_SCALE * 100
        return loss, {"object_loss": float(loss.detach()), "object_error_cm": float(centimetres)}

    def forward(self, batch: Batch, mode: str):
        """Training entry point (so DDP sees a forward call): same as loss()."""
        return self.loss(batch, mode)

    # -- inference -----------------------------------------------------------------------
    @torch.no_grad()
    def predict_action_ids(self, batch: Batch, mode: str) -> torch.Tensor:
        prefix = self.prefix_embeddings(batch)
        if mode == "parallel":
            ids = self._predict_parallel(prefix)
        else:
            ids = self._predict_autoregressive(prefix)
        return ids.view(prefix.shape[0], self.chunk_size, self.action_dim)

    @torch.no_grad()
    def predict_actions(self, batch: Batch) -> torch.Tensor:
        """(B, K, A) normalized actions in [-1, 1] from the regression head, one forward pass."""
        if self.regression_head is None:
            raise ValueError("this checkpoint has no regression head (trained with action tokens)")
        prefix = self.prefix_embeddings(batch)
        queries = self.action_queries.expand(prefix.shape[0], -1, -1)
        query_hidden = self._hidden_states(prefix, queries)[:, -queries.shape[1]:]
        actions = self._regress(query_hidden).clamp(-1.0, 1.0)
        if self.config.gripper_tokens:
            values = torch.as_tensor(self.action_tokenizer.token_values, dtype=actions.dtype, device=actions.device)
            actions[..., -1] = values[self._gripper_logits(query_hidden).argmax(-1)]
        return actions

    def _regress(self, query_hidden: torch.Tensor) -> torch.Tensor:
        """(B, K*A, hidden) -> (B, K, A): one value per action query."""
        return self.regression_head(query_hidden).view(query_hidden.shape[0], self.chunk_size, self.action_dim)

    @torch.no_grad()
    def subtask_logits(self, batch: Batch) -> torch.Tensor:
        """The planner: (images, instruction, state) -> (B, P) scores over config.planner_phrases."""
        if self.planner_head is None:
            raise ValueError("this checkpoint has no planner (trained without subtask labels)")
        planner_batch = Batch(batch.images, batch.state_ids, batch.instructions, [""] * batch.size)
        return self.planner_head(self._last_prefix_hidden(planner_batch))

    def goal_cube_offsets(self, batch: Batch) -> torch.Tensor:
        """(B, 6) where the object head puts the goal's target and base cube, metres from the gripper."""
        if self.object_head is None:
            raise ValueError("this checkpoint has no object head (trained without --object-loss)")
        return self.object_head(self._last_prefix_hidden(batch)) * OBJECT_SCALE

    def _last_prefix_hidden(self, batch: Batch) -> torch.Tensor:
        """(B, hidden): the prompt's last token after the decoder, which the planner and object heads read."""
        return self.lm.model(inputs_embeds=self.prefix_embeddings(batch)).last_hidden_state[:, -1]

    @torch.no_grad()
    def parallel_action_logits(self, batch: Batch) -> torch.Tensor:
        """(B, K*A, n_bins) logits over the action-id slice, one forward pass."""
        return self._parallel_logits(self.prefix_embeddings(batch))

    def _parallel_logits(self, prefix: torch.Tensor) -> torch.Tensor:
        queries = self.action_queries.expand(prefix.shape[0], -1, -1)
        hidden = self._hidden_states(prefix, queries)[:, -queries.shape[1]:]
        return self._action_slice(self.lm.lm_head(hidden))

    def _predict_parallel(self, prefix: torch.Tensor) -> torch.Tensor:
        return self._parallel_logits(prefix).argmax(-1) + self.action_tokenizer.first_id

    def _predict_autoregressive(self, prefix: torch.Tensor) -> torch.Tensor:
        """Greedy decoding with the KV cache, restricted to action ids."""
        out = self.lm.model(inputs_embeds=prefix, use_cache=True)
        if self.object_embedding is not None:
            token = self.object_embedding(self.object_head(out.last_hidden_state[:, -1]))[:, None]
            out = self.lm.model(inputs_embeds=token, past_key_values=out.past_key_values, use_cache=True)
        ids = []
        for _ in range(self.chunk_size * self.action_dim):
            logits = self.lm.lm_head(out.last_hidden_state[:, -1:])
            next_id = self._action_slice(logits).argmax(-1) + self.action_tokenizer.first_id
            ids.append(next_id)
            out = self.lm.model(input_ids=next_id, past_key_values=out.past_key_values, use_cache=True)
        return torch.cat(ids, 1)

    def _action_slice(self, logits: torch.Tensor) -> torch.Tensor:
        return logits[..., self.action_tokenizer.first_id:]


def _goal_keypoints(config: TinyModelConfig, n_cameras: int):
    if not config.goal_keypoints:
        return None
    from vla.goal_keypoints import GoalKeypoints

    return GoalKeypoints(config.vision_channels[0], config.hidden_size, n_cameras)


def noisy_recorded_offsets(recorded: torch.Tensor, predicted: torch.Tensor) -> torch.Tensor:
    """(B, 6) teacher-forced token input: the recorded offsets (5 cm units) plus TEACHER_NOISE_CM of noise, so
    the actions learn to tolerate the head's error; the head's own prediction where no cube is recorded (the
    base slot of a pick goal)."""
    noise = torch.randn_like(recorded) * TEACHER_NOISE_CM / (OBJECT_SCALE * 100)
    return torch.where(torch.isfinite(recorded), recorded.nan_to_num() + noise, predicted)


def check_image_grid(config: TinyModelConfig, image_size: int) -> None:
    """A grid pools the stem's feature map (stride 4, then 2 per further stage): a finer one would only
    repeat tokens. (Checked when a grid is chosen, not at load: older checkpoints trained on small
    images with the default grid keep loading.)"""
    feature_map = image_size // (4 * 2 ** (len(config.vision_channels) - 1))
    if not 1 <= config.image_grid <= feature_map:
        raise ValueError(f"image_grid {config.image_grid} does not fit {image_size}x{image_size} images: the image "
                         f"encoder's feature map is {feature_map}x{feature_map}; pick --set tiny.image_grid=1..{feature_map}")


def batch_text_ids(batch: Batch, encode, device) -> torch.Tensor:
    """(B, MAX_TEXT) prompt ids, truncated or padded with PAD (0)."""
    return padded_text_ids([encode(instruction, subtask) for instruction, subtask in
                            zip(batch.instructions, batch.subtasks)], device)


def padded_text_ids(rows: list[list[int]], device) -> torch.Tensor:
    """(B, MAX_TEXT) ids, each row truncated or padded with PAD (0)."""
    return torch.tensor([ids[:MAX_TEXT] + [0] * (MAX_TEXT - len(ids[:MAX_TEXT])) for ids in rows],
                        dtype=torch.long, device=device)
