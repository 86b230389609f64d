"""Training samples from vla-stack HDF5 datasets, held in memory.

A sample at (demo, t): camera images at t, the proprio state at t, the instruction, the
subtask at t, and the chunk actions[t : t+K] (the last action repeats past the end).
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np
import torch

from vla.action_space import to_model
from vla.batch import Batch
from vla.config import DataConfig
from vla.dataset_file import (DatasetError, attribute, child, data_group, has, member_names, open_hdf5, read,
                              validation_names)
from vla.normalization import NormStats
from vla.scene_labels import Goal, SceneLabels
from vla.tokenizer import ActionTokenizer


@dataclass
class Demo:
    images: np.ndarray  # (T, N_cam, 3, H, W) uint8
    states: np.ndarray  # (T, S) float64
    actions: np.ndarray  # (T, A) float64
    instruction: str
    subtasks: list[str]
    objects: np.ndarray | None = None  # (T, 6) goal's target and base cube minus the gripper, xyz (NaN: none)
    cubes: dict[str, np.ndarray] | None = None  # with objects: colour -> (T, 3) every cube minus the gripper
    task: str = ""  # with objects: the task the file was recorded on (its goals and instruction templates)
    goal: Goal | None = None  # with objects: the goal the instruction names
    cube_pixels: dict[str, np.ndarray] | None = None  # with objects: colour -> (T, N_cam, 2) pixel x, y (NaN: unseen)
    goal_pixels: np.ndarray | None = None  # with objects: (T, N_cam, 2, 2) the goal's target and base cube's pixels
    step_instructions: list[str] | None = None  # with objects, long-horizon goals: each frame's step, as an instruction


def load_demos(paths: list[str], config: DataConfig, labels: SceneLabels | None = None
               ) -> tuple[list[Demo], list[Demo]]:
    """(train, valid) demos of every file, split by each file's /mask (valid: /mask/valid); with the
    simulator's scene `labels` also where the goal's cubes are from the gripper and in each camera image
    (privileged, for the auxiliary losses)."""
    train, valid = [], []
    for path in paths:
        with open_hdf5(path) as f:
            data = data_group(path, f)
            valid_names = validation_names(path, f)
            locate = labels.locator(path, data, config) if labels is not None else None
            for name in member_names(path, data):
                group = child(path, data, name)
                demo = _read_demo(path, group, config)
                if locate is not None:
                    demo.task, demo.goal, demo.cubes, demo.cube_pixels = locate(group)
                    demo.objects = labels.goal_slots(demo.cubes, demo.goal)
                    demo.goal_pixels = labels.per_goal_slot(demo.cube_pixels, demo.goal)
                    demo.step_instructions = labels.step_instructions(demo.goal)
                (valid if name in valid_names else train).append(demo)
    if not train:
        raise ValueError(f"no training demos in {paths}")
    return train, valid


def _read_demo(path: str, group: h5py.Group, config: DataConfig) -> Demo:
    obs = child(path, group, "obs")
    missing = [f"obs/{c}_image" for c in config.cameras if not has(path, obs, f"{c}_image")]
    missing += [f"obs/{k}" for k in config.state_keys if not has(path, obs, k)]
    if missing:
        raise DatasetError(f"{path}:{group.name} lacks {missing}; the model expects cameras {list(config.cameras)}")
    images = np.stack([read(path, obs, f"{c}_image") for c in config.cameras], axis=1)  # (T, N, H, W, 3)
    if images.shape[2:4] != (config.image_size, config.image_size):
        raise DatasetError(f"{path}:{group.name} images are {images.shape[2]}x{images.shape[3]}, the model expects "
                           f"{config.image_size}x{config.image_size}; collect with --image-size {config.image_size}")
    actions = read(path, group, "actions").astype(np.float64)
    if actions.shape[1] != config.action_dim:
        raise DatasetError(f"{path}:{group.name} actions have {actions.shape[1]} dims, expected {config.action_dim}")
    subtasks = [s.decode() if isinstance(s, bytes) else str(s) for s in read(path, group, "subtasks")] \
        if has(path, group, "subtasks") else [""] * len(actions)
    instruction = attribute(path, group, "instruction", "")
    return Demo(images=np.ascontiguousarray(images.transpose(0, 1, 4, 2, 3)),
                states=np.concatenate([read(path, obs, k) for k in config.state_keys], axis=1).astype(np.float64),
                actions=actions, instruction=instruction.decode() if isinstance(instruction, bytes) else instruction,
                subtasks=subtasks)


def compute_norm_stats(demos: list[Demo], config: DataConfig) -> NormStats:
    """Quantiles of the model's action targets (every chunk offset) and of the proprio state."""
    targets = [chunk_targets(d, t, config) for d in demos for t in range(len(d.actions))]
    return NormStats.compute(config.robot, np.concatenate(targets), np.concatenate([d.states for d in demos]))


def chunk_targets(demo: Demo, t: int, config: DataConfig) -> np.ndarray:
    """(K, A) targets of the chunk asked for at step t (the last action repeats past the end)."""
    steps = np.minimum(np.arange(t, t + config.chunk_size), len(demo.actions) - 1)
    return to_model(demo.actions[steps], demo.states[t], config.action_mode)


IDLE_STATE_CHANGE = 5e-4  # rad (joints) and m (fingers) per step: below it the robot is at rest
IDLE_ACTION_CHANGE = 1e-3  # a command this close to the previous one is the same command


def idle_frames(demo: Demo) -> np.ndarray:
    """(T,) True where the robot is at rest and the command repeats the previous one: the end of a
    timed wait (the expert holds still ~5 steps after the fingers have closed on the cube). Such frames
    look alike but are labelled "hold" or "move on" by a clock the policy cannot see; trained on, they
    teach it to wait for ever. The first and last frames are never idle."""
    idle = np.zeros(len(demo.actions), dtype=bool)
    if len(idle) > 2:
        at_rest = np.abs(np.diff(demo.states, axis=0)).max(1)[1:] < IDLE_STATE_CHANGE
        same_command = np.abs(np.diff(demo.actions, axis=0)).max(1)[:-1] < IDLE_ACTION_CHANGE
        idle[1:-1] = at_rest & same_command
    return idle


OBJECT_SCALE = 0.05  # m: goal cube offsets from the gripper are trained in units of 5 cm


class ChunkDataset(torch.utils.data.Dataset):
    """Indexable samples (without idle frames when the config says so); collate with `collate`.
    Demos loaded with_objects give each sample its goal cubes' offsets from the gripper."""

    def __init__(self, demos: list[Demo], config: DataConfig, stats: NormStats, tokenizer: ActionTokenizer,
                 phrases: tuple[str, ...] = (), labels: SceneLabels | None = None):
        self.demos, self.config, self.stats, self.tokenizer, self.labels = demos, config, stats, tokenizer, labels
        self.phrase_index = {phrase: i for i, phrase in enumerate(phrases)}
        self.index = [(d, t) for d, demo in enumerate(demos) for t in np.flatnonzero(~self._skipped(demo))]
        self.weights: np.ndarray | None = None  # sampling probability of each index (None: uniform)

    def _skipped(self, demo: Demo) -> np.ndarray:
        return idle_frames(demo) if self.config.skip_idle_frames else np.zeros(len(demo.actions), dtype=bool)

    def mix_in(self, replay_from: int, share: float) -> None:
        """Demos from index replay_from on are replay data (fine-tuning): draw `share` of the samples
        from them and the rest from the demos before, each frame of a part equally likely."""
        is_replay = np.array([d >= replay_from for d, _ in self.index])
        if not 0.0 < share < 1.0 or is_replay.all() or not is_replay.any():
            raise ValueError(f"replay: a share in (0, 1) of samples from replay data beside the new data, got "
                             f"share {share} with {int(is_replay.sum())} of {len(is_replay)} frames replayed")
        self.weights = np.where(is_replay, share / is_replay.sum(), (1.0 - share) / (~is_replay).sum())

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict:
        return self.sample(i)

    def sample(self, i: int, rng: np.random.Generator | None = None, relabel_goals: float = 0.0,
               step_instructions: float = 0.0) -> dict:
        """Sample i; with `rng` (training) the proprio state gets the config's `state_noise`: the
        targets stay where the demo went, so the model learns to steer back to the path rather than
        follow wherever the joints are (copycat drift). With `relabel_goals` too, that share of the
        samples of multi-cube tasks names another goal and trains the object head only (sim/goal_relabel.py).
        With `step_instructions`, that share of the samples of long-horizon demos is prompted with the
        instruction of the step the frame is on ("put the green cube on the red cube") instead of the whole
        task's: what a hierarchical policy's step planner tells its controller (policies/hierarchical.py)."""
        d, t = self.index[i]
        demo = self.demos[d]
        actions = np.clip(self.stats.action.normalize(chunk_targets(demo, t, self.config)), -1.0, 1.0)
        state = self.stats.state.normalize(demo.states[t])
        if rng is not None and self.config.state_noise > 0:
            state = state + rng.normal(0.0, self.config.state_noise, size=state.shape)
        sample = {
            "images": demo.images[t],
            "state_ids": self.tokenizer.encode(state),
            "action_ids": self.tokenizer.encode(actions),
            "actions": actions.astype(np.float32),
            "instruction": _instruction(demo, t, rng, step_instructions),
            "subtask": demo.subtasks[t] if self.config.use_subtasks else "",
            "plan_target": self.phrase_index.get(demo.subtasks[t], -1),
        }
        if demo.objects is not None:
            sample["objects"] = (demo.objects[t] / OBJECT_SCALE).astype(np.float32)
            sample["goal_pixels"] = demo.goal_pixels[t].astype(np.float32)
        if rng is not None and relabel_goals > 0 and demo.cubes is not None and rng.random() < relabel_goals:
            sample = _relabelled(sample, demo, t, rng, self.labels)
        return sample


def _instruction(demo: Demo, t: int, rng: np.random.Generator | None, step_share: float) -> str:
    if rng is not None and demo.step_instructions is not None and step_share > 0 and rng.random() < step_share:
        return demo.step_instructions[t]
    return demo.instruction


def _relabelled(sample: dict, demo: Demo, t: int, rng: np.random.Generator, labels: SceneLabels) -> dict:
    """The sample with another goal of its task: the new instruction, cube offsets and pixels, no subtask,
    no planner target, and its actions marked as not to be trained (they belong to the recorded goal)."""
    other = labels.counterfactual_goal(demo.task, demo.goal, demo.cubes, rng)
    if other is None:
        return sample
    instruction, goal = other
    offsets = labels.goal_slots({color: xyz[t] for color, xyz in demo.cubes.items()}, goal)
    pixels = labels.per_goal_slot({color: xy[t] for color, xy in demo.cube_pixels.items()}, goal)
    return {**sample, "instruction": instruction, "objects": (offsets / OBJECT_SCALE).astype(np.float32),
            "goal_pixels": pixels.astype(np.float32), "subtask": "", "plan_target": -1, "train_actions": False}


def collate(samples: list[dict]) -> Batch:
    return Batch(
        images=torch.from_numpy(np.stack([s["images"] for s in samples])),
        state_ids=torch.from_numpy(np.stack([s["state_ids"] for s in samples])),
        instructions=[s["instruction"] for s in samples],
        subtasks=[s["subtask"] for s in samples],
        action_ids=torch.from_numpy(np.stack([s["action_ids"] for s in samples])),
        plan_targets=torch.tensor([s.get("plan_target", -1) for s in samples], dtype=torch.long),
        actions=torch.from_numpy(np.stack([s["actions"] for s in samples])),
        objects=torch.from_numpy(np.stack([s["objects"] for s in samples])) if "objects" in samples[0] else None,
        goal_pixels=torch.from_numpy(np.stack([s["goal_pixels"] for s in samples])) if "goal_pixels" in samples[0]
        else None,
        action_rows=_action_rows(samples),
    )


def _action_rows(samples: list[dict]) -> torch.Tensor | None:
    rows = [s.get("train_actions", True) for s in samples]
    return None if all(rows) else torch.tensor(rows)


def drop_subtasks(batch: Batch, rate: float, generator: np.random.Generator) -> Batch:
    """Prompt a share of the rows without their subtask: they train the flat controller and
    the planner (whose prompt is the same)."""
    keep = generator.random(batch.size) >= rate
    batch.subtasks = [s if k else "" for s, k in zip(batch.subtasks, keep)]
    return batch


def random_shift(images: torch.Tensor, pad: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, 3, H, W) uint8 -> (same shape, each image shifted by up to `pad` pixels (edge padding);
    (B, N, 2) how far its content moved, x and y in pixels)."""
    b, n, c, h, w = images.shape
    flat = images.reshape(b * n, c, h, w).float()
    padded = torch.nn.functional.pad(flat, (pad, pad, pad, pad), mode="replicate")
    dx, dy = torch.randint(0, 2 * pad + 1, (2, b * n))
    out = torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b * n)])
    moved = torch.stack([pad - dx, pad - dy], dim=1).float().reshape(b, n, 2)
    return out.to(images.dtype).reshape(b, n, c, h, w), moved


def shift_pixels(pixels: torch.Tensor, moved: torch.Tensor, image_size: int) -> torch.Tensor:
    """(B, N, slots, 2) pixel positions after `random_shift` moved each image's content by (B, N, 2);
    NaN where a point left the image."""
    shifted = pixels + moved[:, :, None]
    outside = ((shifted < 0) | (shifted >= image_size)).any(-1, keepdim=True)
    return shifted.masked_fill(outside, float("nan"))
