"""Model, data and training configuration (frozen dataclasses, presets in Python)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from vla.action_space import check_mode

# regression: the parallel action queries read out as one continuous value each, trained with L1
# (OpenVLA-OFT; optionally the joints only, the gripper staying a token); its checkpoints decode only
# that way, and token checkpoints never do.
DECODING_MODES = ("autoregressive", "parallel", "regression")
READOUTS = ("argmax", "mean")  # per action token: the likeliest bin, or the expected value (parallel only)
OBJECT_TOKEN_MODES = ("", "predicted", "teacher")


@dataclass(frozen=True)
class TinyModelConfig:
    """The default from-scratch backbone: conv stem + MLP projector + small Llama decoder."""

    text_vocab_size: int = 64  # set from the trained word tokenizer
    n_bins: int = 256
    hidden_size: int = 192
    num_layers: int = 4
    num_heads: int = 6
    intermediate_size: int = 512
    vision_channels: tuple[int, ...] = (32, 64, 128)
    image_grid: int = 4  # image tokens per camera: grid x grid
    keypoints: int = 0  # spatial-softmax keypoints per camera, 8 per extra token (0: none)
    coordinate_channels: bool = False  # CoordConv: x and y as two more input channels of the image encoder
    goal_keypoints: bool = False  # per camera and goal slot, a spatial soft-argmax whose query the instruction gives
    goal_keypoint_loss: float = 0.0  # training: weight of the loss putting them on the goal's cubes in each image
    gripper_tokens: bool = False  # regression decoding: regress the joints, keep the gripper an action token
    max_positions: int = 512
    planner_phrases: tuple[str, ...] = ()  # subtask phrases the planner head chooses from (empty: no planner)
    object_loss: float = 0.0  # training: weight of the auxiliary "where are the goal's cubes" loss (0: no head)
    object_token: str = ""  # "predicted" / "teacher": the cube offsets become an input token of the actions ("": off)

    def __post_init__(self):
        if self.object_loss < 0:
            raise ValueError(f"object_loss is a loss weight, >= 0 (0: off), got {self.object_loss}; "
                             "e.g. --object-loss 1")
        if self.object_token not in OBJECT_TOKEN_MODES:
            raise ValueError(f"object_token is one of {', '.join(OBJECT_TOKEN_MODES[1:])} (or empty: off), "
                             f"got {self.object_token!r}")
        if self.goal_keypoint_loss < 0 or (self.goal_keypoint_loss and not self.goal_keypoints):
            raise ValueError(f"goal_keypoint_loss is a loss weight, >= 0 (0: off), on the goal keypoints; got "
                             f"{self.goal_keypoint_loss} (goal keypoints: {self.goal_keypoints}): e.g. "
                             "--goal-keypoints --goal-keypoint-loss 1")
        if self.object_token and self.object_loss <= 0:
            raise ValueError("object_token needs the object head that predicts the offsets: add --object-loss W "
                             "(e.g. 1) to --object-token")

    @property
    def vocab_size(self) -> int:
        return self.text_vocab_size + self.n_bins


@dataclass(frozen=True)
class DataConfig:
    robot: str = "panda"
    cameras: tuple[str, ...] = ("agentview", "robot0_eye_in_hand")
    image_size: int = 128
    state_keys: tuple[str, ...] = ("robot0_joint_pos", "robot0_gripper_qpos")
    chunk_size: int = 8  # K future actions per prediction
    action_dim: int = 8
    use_subtasks: bool = False  # condition on the expert's subtask phrase and train a planner (hierarchical)
    subtask_dropout: float = 0.5  # with use_subtasks: share of samples prompted without it (flat + planner)
    action_mode: str = "absolute"  # or "delta": joint targets relative to the current joints (vla/action_space.py)
    skip_idle_frames: bool = False  # train without frames where neither robot nor command moves (vla/data.py)
    state_noise: float = 0.0  # training only: std of Gaussian noise on the normalized proprio state ([-1, 1])

    def __post_init__(self):
        check_mode(self.action_mode)
        if not 0.0 <= self.state_noise <= 1.0:
            raise ValueError(f"state_noise is a std in the normalized state's [-1, 1] units; 0 <= it <= 1, "
                             f"got {self.state_noise} (e.g. --set data.state_noise=0.1)")


@dataclass(frozen=True)
class VlaConfig:
    backbone: str = "tiny"  # "tiny" or a local Hugging Face checkpoint directory
    decoding: str = "parallel"  # or "autoregressive", or "regression" (continuous L1 head; tiny backbone)
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    lora_rank: int = 0

    def __post_init__(self):
        if self.decoding not in DECODING_MODES:
            raise ValueError(f"decoding must be one of {DECODING_MODES}, got {self.decoding!r}")
        if self.decoding == "regression" and self.backbone != "tiny":
            raise ValueError("--decoding regression: only the tiny backbone has a regression head so far; "
                             "use --decoding parallel with a Hugging Face backbone")
        if self.tiny.gripper_tokens and self.decoding != "regression":
            raise ValueError("tiny.gripper_tokens splits the regression head (joints regressed, gripper an action "
                             f"token); it needs --decoding regression, got {self.decoding!r}")

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=2))

    @staticmethod
    def load(path: str | Path) -> "VlaConfig":
        data = json.loads(Path(path).read_text())
        return VlaConfig(backbone=data["backbone"], decoding=data["decoding"], lora_rank=data.get("lora_rank", 0),
                         tiny=_from_dict(TinyModelConfig, data["tiny"]), data=_from_dict(DataConfig, data["data"]))


def _from_dict(cls, data: dict):
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields {sorted(unknown)} in config.json")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    return cls(**values)


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 2000
    batch_size: int = 32
    learning_rate: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    grad_clip: float = 1.0
    save_every: int = 500
    eval_every: int = 250
    eval_batches: int = 4
    seed: int = 0
    augment: bool = True
    image_shift: int = 6  # with augment: shift each training image by up to this many pixels (0: off)
    snapshot_every: int = 0  # also keep the weights of every N-th step under OUT/snapshots/ (0: off)
    ema_decay: float = 0.0  # and an exponential moving average of them (e.g. 0.999; 0: off)
    relabel_goals: float = 0.0  # with augment: share of multi-cube samples naming another goal (sim/goal_relabel.py)
    replay_share: float = 0.5  # with replay data (fine-tuning): the share of every batch drawn from it
    step_instructions: float = 0.0  # with augment: share of long-horizon samples told only their step (vla/data.py)
    retime_step: float = 0.0  # retime the --data demos to steps of >= this many rad (vla/retiming.py; 0: as recorded)

    def __post_init__(self):
        if self.retime_step < 0:
            raise ValueError(f"retime_step is a joint-target step in rad, >= 0 (0: demos as recorded), got "
                             f"{self.retime_step} (e.g. --set train.retime_step=0.03)")
