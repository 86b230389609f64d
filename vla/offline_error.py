"""`vla offline-error`: how far a checkpoint's joint targets are from the demonstrator's on held-out frames.

Each sampled frame of a validation demo (`/mask/valid`) is given to the controller without a
subtask (flat), and its chunk is compared with the demo's next K recorded actions. The same
frames scored by "keep the current joints" give the baseline the model has to beat. Cheap to
run, but it does not rank closed-loop success (README, Results): use it to catch a broken model,
and `vla eval` to compare good ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sim.dataset import open_dataset, read_episode, split_masks


@dataclass
class OfflineError:
    checkpoint: str
    dataset: str
    demos: int
    frames: int
    joint_error_rad: float  # mean |predicted - recorded| joint target over each chunk
    hold_error_rad: float  # the same for "keep the current joints"
    gripper_mismatch: float  # fraction of actions whose open / closed command disagrees

    def to_dict(self) -> dict:
        return asdict(self)


def offline_error(checkpoint: str | Path, dataset: str | Path, every: int = 6, max_demos: int = 6) -> OfflineError:
    from vla.inference import VlaPredictor

    if every < 1 or max_demos < 1:
        raise ValueError(f"--every and --demos must be at least 1, got {every} and {max_demos}")
    predictor = VlaPredictor.load(checkpoint)
    info = open_dataset(dataset)
    _, valid = split_masks(list(info.demo_names))
    names = (valid or list(info.demo_names))[:max_demos]
    joint, hold, gripper = [], [], []
    for name in names:
        episode = read_episode(dataset, name)
        for t in range(0, episode.num_samples, every):
            frame = {key: value[t] for key, value in episode.observations.items()}
            chunk = predictor.predict(frame, episode.instruction)
            recorded = episode.actions[t:t + len(chunk)]
            predicted = chunk[:len(recorded)]
            joint.append(np.abs(predicted[:, :-1] - recorded[:, :-1]).mean())
            hold.append(np.abs(frame["robot0_joint_pos"] - recorded[:, :-1]).mean())
            gripper.append(np.mean((predicted[:, -1] > 0.5) != (recorded[:, -1] > 0.5)))
    return OfflineError(str(checkpoint), str(dataset), len(names), len(joint), float(np.mean(joint)),
                        float(np.mean(hold)), float(np.mean(gripper)))


def format_offline_error(report: OfflineError) -> str:
    return (f"{report.checkpoint} on {report.demos} validation demos of {report.dataset} ({report.frames} frames): "
            f"joint targets off by {report.joint_error_rad:.4f} rad (keeping the current joints: "
            f"{report.hold_error_rad:.4f} rad), gripper command wrong on {100 * report.gripper_mismatch:.1f}% of actions")
