"""Loading a checkpoint and predicting action chunks in robot units.

    predictor = VlaPredictor.load("checkpoints/default")
    chunk = predictor.predict(observation, instruction, subtask="")   # (K, A) float32
CUDA with bf16 autocast when available, else CPU (float32).

A predictor shared by several threads (a policy server's sessions, each with its own policy state)
runs every forward pass on one thread of its own and can answer concurrent predict() calls with one
batched pass: `share_between_threads`.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch

from robots.batching import Batcher
from vla.action_space import to_robot
from vla.batch import Batch, check_decoding
from vla.checkpoint import load_checkpoint
from vla.config import READOUTS

T = TypeVar("T")


class VlaPredictor:
    def __init__(self, model, config, stats, device: torch.device | None = None):
        self.device = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model = model.to(self.device).eval()
        self.config, self.stats = config, stats
        self.tokenizer = model.action_tokenizer
        self.bf16 = self.device.type == "cuda"  # bf16 autocast on GPUs; set False for float32
        self.readout = "argmax"  # or "mean": each action's expected value under the parallel head
        self._batcher: Batcher | None = None
        self._plan_batcher: Batcher | None = None
        self._model_thread: ThreadPoolExecutor | None = None

    @staticmethod
    def load(directory: str | Path, robot: str | None = None, device: str | None = None) -> "VlaPredictor":
        model, config, stats = load_checkpoint(directory, robot=robot)
        return VlaPredictor(model, config, stats, torch.device(device) if device else None)

    @property
    def chunk_size(self) -> int:
        return self.config.data.chunk_size

    def predict(self, observation: dict, instruction: str, subtask: str = "", mode: str | None = None) -> np.ndarray:
        """One observation -> (K, A) actions in robot units (joint targets in rad, gripper in [0, 1])."""
        prepared = self._prepare(observation)  # a bad observation fails here, never a batch shared with others
        if self._batcher is not None and mode is None:
            return self._batcher.submit((prepared, instruction, subtask))
        return self._predict_prepared([prepared], [instruction], [subtask], mode)[0]

    def share_between_threads(self, max_batch: int = 1, wait_s: float = 0.0) -> None:
        """Get ready for several threads calling at once (a policy server's sessions).

        Every forward pass from now on runs on one thread of the predictor's own: PyTorch's OpenMP gives
        each thread that calls it a team of workers, and on a small CPU the teams slow each other down
        (measured on 2 cores: 19-22 ms a chunk from a second thread once the first had run the model,
        10-11 ms from a single thread). With max_batch > 1, predict() calls made at the same time are
        answered by one pass over up to max_batch observations (robots.batching.Batcher: the first caller
        waits up to wait_s for others; calls arriving while a pass runs join the next); each caller still
        gets its own chunk. The planner's plan() calls are batched the same way, in passes of their own."""
        if max_batch < 1 or wait_s < 0:
            raise ValueError(f"max_batch must be >= 1 and wait_s >= 0, got {max_batch} and {wait_s}")
        if self._model_thread is None:
            self._model_thread = ThreadPoolExecutor(1, thread_name_prefix="vla-model")
        batching = max_batch > 1
        self._batcher = Batcher(self._predict_items, max_batch, wait_s) if batching else None
        self._plan_batcher = Batcher(self._subtask_scores, max_batch, wait_s) if batching and self.has_planner else None

    def _on_model_thread(self, forward: Callable[[], T]) -> T:
        """forward() under torch.inference_mode, on the model thread once there is one."""
        def run() -> T:
            with torch.inference_mode():
                return forward()

        return run() if self._model_thread is None else self._model_thread.submit(run).result()

    @property
    def batch_sizes(self) -> list[int]:
        """The size of every batched action pass so far (empty while batching is off)."""
        return self._batcher.batch_sizes if self._batcher is not None else []

    @property
    def plan_batch_sizes(self) -> list[int]:
        """The size of every batched planner pass so far (empty while batching is off)."""
        return self._plan_batcher.batch_sizes if self._plan_batcher is not None else []

    def _predict_items(self, items: list[tuple]) -> np.ndarray:
        prepared, instructions, subtasks = zip(*items)
        return self._predict_prepared(list(prepared), list(instructions), list(subtasks))

    @property
    def has_planner(self) -> bool:
        return bool(getattr(self.model, "planner_head", None) is not None)

    @property
    def planner_phrases(self) -> tuple[str, ...]:
        return tuple(self.config.tiny.planner_phrases) if self.has_planner else ()

    def plan(self, observation: dict, instruction: str, allowed: Collection[str] | None = None) -> str:
        """The subtask phrase the planner picks for this observation and goal; with `allowed`, the likeliest
        of those phrases."""
        phrases = self.planner_phrases
        if allowed is not None and (set(allowed) - set(phrases) or not allowed):
            raise ValueError(f"allowed subtasks must be some of this planner's phrases {phrases}, "
                             f"got {sorted(allowed)}")
        item = (self._prepare(observation), instruction)
        scores = self._plan_batcher.submit(item) if self._plan_batcher else self._subtask_scores([item])[0]
        if allowed is not None:
            scores = scores.masked_fill(torch.tensor([p not in allowed for p in phrases]), float("-inf"))
        return phrases[int(scores.argmax())]

    def _subtask_scores(self, items: list[tuple]) -> torch.Tensor:
        """(B, phrases) planner logits for [(prepared observation, instruction)]."""
        prepared, instructions = zip(*items)
        batch = self._batch(list(prepared), list(instructions), [""] * len(items)).to(self.device)
        return self._on_model_thread(lambda: self.model.subtask_logits(batch).float().cpu())

    @property
    def has_object_head(self) -> bool:
        return getattr(self.model, "object_head", None) is not None

    @property
    def has_goal_keypoints(self) -> bool:
        return getattr(self.model, "goal_keypoints", None) is not None

    def goal_keypoints(self, observation: dict, instruction: str) -> np.ndarray:
        """(cameras, 2 slots, 2) pixel x, y of the patch each camera's goal keypoints weigh most (target
        cube, then base cube), in the config's image size."""
        from vla.goal_keypoints import cell_centres

        batch = self._one(observation, instruction)
        logits = self._on_model_thread(lambda: self.model.goal_keypoint_logits(batch)[0].float().cpu())
        h, w = logits.shape[-2:]
        return cell_centres(h, w, self.config.data.image_size)[logits.flatten(2).argmax(-1)].numpy()

    def goal_cubes(self, observation: dict, instruction: str, subtask: str = "") -> np.ndarray:
        """(6,) where the model's object head puts the goal's target and base cube (world xyz minus the
        gripper's, metres; the base is meaningless on pick goals): what the actions are conditioned on."""
        batch = self._one(observation, instruction, subtask)
        return self._on_model_thread(lambda: self.model.goal_cube_offsets(batch)[0].float().cpu().numpy())

    def predict_batch(self, observations: list[dict], instructions: list[str], subtasks: list[str],
                      mode: str | None = None) -> np.ndarray:
        """B observations -> (B, K, A)."""
        return self._predict_prepared([self._prepare(obs) for obs in observations], instructions, subtasks, mode)

    def _predict_prepared(self, prepared: list[tuple[np.ndarray, np.ndarray]], instructions: list[str],
                          subtasks: list[str], mode: str | None = None) -> np.ndarray:
        mode = mode or self.config.decoding
        check_decoding(mode, self.config.decoding)
        check_readout(self.readout, mode)
        batch = self._batch(prepared, instructions, subtasks).to(self.device)

        def forward() -> np.ndarray:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
                return self._normalized_actions(batch, mode)

        normalized = self._on_model_thread(forward)
        actions = self.stats.action.unnormalize(normalized)
        states = np.stack([state for _, state in prepared])
        return to_robot(actions, states, self.config.data.action_mode).astype(np.float32)

    def _normalized_actions(self, batch: Batch, mode: str) -> np.ndarray:
        """(B, K, A) actions in the model's normalized [-1, 1] units."""
        if mode == "regression":
            return self.model.predict_actions(batch).float().cpu().numpy()
        if self.readout == "mean":
            return self._mean_readout(batch)
        return self.tokenizer.decode(self.model.predict_action_ids(batch, mode).cpu().numpy())

    def _mean_readout(self, batch: Batch) -> np.ndarray:
        probs = self.model.parallel_action_logits(batch).float().softmax(-1).cpu().numpy()
        return self.tokenizer.mean_of(probs).reshape(batch.size, self.chunk_size, -1)

    def _prepare(self, obs: dict) -> tuple[np.ndarray, np.ndarray]:
        """(images (N_cam, 3, H, W) uint8, proprio state) of one observation, checked against the checkpoint."""
        return self._images(obs), self._state(obs)

    def _batch(self, prepared: list[tuple[np.ndarray, np.ndarray]], instructions, subtasks) -> Batch:
        subtasks = subtasks if self.config.data.use_subtasks else [""] * len(prepared)
        images = np.stack([images for images, _ in prepared])
        states = np.stack([state for _, state in prepared])
        return Batch(images=torch.from_numpy(images),
                     state_ids=torch.from_numpy(self.tokenizer.encode(self.stats.state.normalize(states))),
                     instructions=list(instructions), subtasks=list(subtasks))

    def _one(self, observation: dict, instruction: str, subtask: str = "") -> Batch:
        return self._batch([self._prepare(observation)], [instruction], [subtask]).to(self.device)

    def _images(self, obs: dict) -> np.ndarray:
        """(N_cam, 3, H, W) uint8 from the observation's "<camera>_image" entries."""
        data = self.config.data
        size = (data.image_size, data.image_size, 3)
        images = []
        for camera in data.cameras:
            key = f"{camera}_image"
            if key not in obs:
                have = sorted(k for k in obs if k.endswith("_image"))
                raise ValueError(f"observation lacks {key!r} (has {have}); this checkpoint needs cameras "
                                 f"{list(data.cameras)}")
            image = np.asarray(obs[key])
            if image.shape != size or image.dtype != np.uint8:
                raise ValueError(f"{key} is {image.shape} {image.dtype}; this checkpoint needs {size} uint8 "
                                 f"(row 0 = top)")
            images.append(image.transpose(2, 0, 1))
        return np.stack(images)

    def _state(self, obs: dict) -> np.ndarray:
        parts = []
        for key in self.config.data.state_keys:
            if key not in obs:
                raise ValueError(f"observation lacks {key!r}; this checkpoint needs {list(self.config.data.state_keys)}")
            parts.append(np.asarray(obs[key], dtype=np.float64).reshape(-1))
        state = np.concatenate(parts)
        if state.shape != self.stats.state.q01.shape:
            raise ValueError(f"proprio state has {state.size} values, the checkpoint's robot "
                             f"{self.stats.robot!r} has {self.stats.state.q01.size}")
        if not np.all(np.isfinite(state)):
            raise ValueError(f"proprio state contains NaN or Inf: {state.tolist()}")
        return state


def check_readout(readout: str, mode: str) -> None:
    if readout not in READOUTS:
        raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
    if readout == "mean" and mode != "parallel":
        raise ValueError("the mean readout needs parallel decoding (one distribution per action token); "
                         f"this prediction uses {mode!r}" + (" (whose head already outputs continuous values)"
                                                             if mode == "regression" else ""))
