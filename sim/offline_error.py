"""`vla offline-error`: how far a checkpoint's joint targets are from the demonstrator's on held-out frames.

Each sampled frame of a validation demo (`/mask/valid`) is given to the controller without a
subtask (flat), and its chunk is compared with the demo's next K recorded actions. The same
frames scored by "keep the current joints" give the baseline the model has to beat, and the same
frames with the camera images of another validation demo (same step, the cube elsewhere) tell how
much the chunk depends on what the cameras see. With an object head (`--object-loss`), the
head's error on the goal's target cube at each scored demo's first frame, where the arm is at rest
and only the instruction's words tell which cube is meant (sim/goal_relabel.py); with goal keypoints
(`--goal-keypoints`), the same for the patch their attention weighs most in each camera. Cheap to
run, but it does not rank closed-loop success (README, Results): use it to catch a broken model,
and `vla eval` to compare good ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sim.approach import GRIPPER_CLOSE_COMMAND
from sim.camera_projection import CameraProjector
from sim.dataset import open_dataset, read_episode
from sim.object_positions import cube_positions, cube_qpos_addresses
from sim.tasks import Goal


@dataclass
class OfflineError:
    checkpoint: str
    dataset: str
    demos: int
    frames: int
    joint_error_rad: float  # mean |predicted - recorded| joint target over each chunk
    hold_error_rad: float  # the same for "keep the current joints"
    other_images_error_rad: float | None  # the model given another demo's images (None: one demo only)
    gripper_mismatch: float  # fraction of actions whose open / closed command disagrees
    first_frame_cube_error_cm: float | None = None  # median object-head target-cube error at the first frames
    first_frame_named_cube: float | None = None  # share of first frames where the head is nearest the named cube
    first_frame_keypoint_error_px: float | None = None  # median goal-keypoint distance to the named cube's pixel
    first_frame_keypoint_named_cube: float | None = None  # share of (first frame, camera) where it is the nearest

    def to_dict(self) -> dict:
        return asdict(self)


def offline_error(checkpoint: str | Path, dataset: str | Path, every: int = 6, max_demos: int = 6) -> OfflineError:
    from vla.inference import VlaPredictor

    if every < 1 or max_demos < 1:
        raise ValueError(f"--every and --demos must be at least 1, got {every} and {max_demos}")
    predictor = VlaPredictor.load(checkpoint)
    info = open_dataset(dataset)
    names = list(info.valid_names or info.demo_names)[:max_demos]
    episodes = [read_episode(dataset, name) for name in names]
    joint, hold, gripper, other_images = [], [], [], []
    for index, episode in enumerate(episodes):
        other = episodes[(index + 1) % len(episodes)] if len(episodes) > 1 else None
        for t in range(0, episode.num_samples, every):
            frame = {key: value[t] for key, value in episode.observations.items()}
            recorded = episode.actions[t:t + predictor.chunk_size]
            predicted = predictor.predict(frame, episode.instruction)[:len(recorded)]
            joint.append(_joint_error(predicted, recorded))
            hold.append(np.abs(frame["robot0_joint_pos"] - recorded[:, :-1]).mean())
            closes, recorded_closes = predicted[:, -1] > GRIPPER_CLOSE_COMMAND, recorded[:, -1] > GRIPPER_CLOSE_COMMAND
            gripper.append(np.mean(closes != recorded_closes))
            if other is not None and t < other.num_samples:
                swapped = {**frame, **{key: other.observations[key][t] for key in frame if key.endswith("_image")}}
                other_images.append(_joint_error(predictor.predict(swapped, episode.instruction)[:len(recorded)],
                                                 recorded))
    return OfflineError(str(checkpoint), str(dataset), len(names), len(joint), float(np.mean(joint)),
                        float(np.mean(hold)), float(np.mean(other_images)) if other_images else None,
                        float(np.mean(gripper)), *_first_frame_grounding(predictor, info.env_args.get("task"),
                                                                         episodes),
                        *_first_frame_keypoints(predictor, info.env_args.get("task"), episodes))


def _first_frame_grounding(predictor, task: str | None, episodes) -> tuple[float | None, float | None]:
    """At each episode's first frame: the median distance (cm) between the object head's target cube and the
    recorded one, and the share of episodes where the head's point is nearer the named cube than any other;
    (None, None) without a head, a recorded task or the gripper's recorded position."""
    if not predictor.has_object_head or task is None or any("robot0_eef_pos" not in e.observations for e in episodes):
        return None, None
    errors, nearest_named = [], []
    for episode in episodes:
        gripper = episode.observations["robot0_eef_pos"][0]
        cubes = {color: xyz[0] - gripper for color, xyz in
                 cube_positions(cube_qpos_addresses(task, episode.model_file), episode.states[:1]).items()}
        frame = {key: value[0] for key, value in episode.observations.items()}
        predicted = predictor.goal_cubes(frame, episode.instruction)[:3]
        distances = {color: 100 * np.linalg.norm(predicted - xyz) for color, xyz in cubes.items()}
        target = Goal.from_dict(episode.goal).target
        errors.append(distances[target])
        nearest_named.append(min(distances, key=distances.get) == target)
    return float(np.median(errors)), float(np.mean(nearest_named))


def _first_frame_keypoints(predictor, task: str | None, episodes) -> tuple[float | None, float | None]:
    """At each episode's first frame, in each camera that sees the named cube: the median pixel distance
    from the target slot's likeliest patch to the named cube, and the share of (episode, camera) pairs
    where that patch is nearer the named cube than any other seen cube; (None, None) without goal keypoints."""
    if not predictor.has_goal_keypoints or task is None:
        return None, None
    data = predictor.config.data
    errors, nearest_named = [], []
    for episode in episodes:
        world = cube_positions(cube_qpos_addresses(task, episode.model_file), episode.states[:1])
        pixels = CameraProjector(episode.model_file, data.cameras, data.image_size).pixels(episode.states[:1], world)
        frame = {key: value[0] for key, value in episode.observations.items()}
        looks = predictor.goal_keypoints(frame, episode.instruction)[:, 0]  # (cameras, 2): the target slot
        target = Goal.from_dict(episode.goal).target
        for camera, point in enumerate(looks):
            seen = {color: xy[0, camera] for color, xy in pixels.items() if np.isfinite(xy[0, camera]).all()}
            if target not in seen:
                continue
            distances = {color: float(np.linalg.norm(point - xy)) for color, xy in seen.items()}
            errors.append(distances[target])
            nearest_named.append(min(distances, key=distances.get) == target)
    if not errors:
        return None, None
    return float(np.median(errors)), float(np.mean(nearest_named))


def _joint_error(predicted: np.ndarray, recorded: np.ndarray) -> float:
    return float(np.abs(predicted[:, :-1] - recorded[:, :-1]).mean())


def format_offline_error(report: OfflineError) -> str:
    return (f"{report.checkpoint} on {report.demos} validation demos of {report.dataset} ({report.frames} frames): "
            f"joint targets off by {report.joint_error_rad:.4f} rad (keeping the current joints: "
            f"{report.hold_error_rad:.4f} rad{_other_images(report)}), gripper command wrong on "
            f"{100 * report.gripper_mismatch:.1f}% of actions{_first_frames(report)}")


def _first_frames(report: OfflineError) -> str:
    """What the object head and the goal keypoints (where the checkpoint has them) make of the first frames."""
    parts = []
    if report.first_frame_cube_error_cm is not None:
        parts.append(f"the object head's goal cube at the first frames (the arm at rest: only the words say which "
                     f"cube) {report.first_frame_cube_error_cm:.1f} cm off (median), nearest the named cube in "
                     f"{100 * report.first_frame_named_cube:.0f}% of them")
    if report.first_frame_keypoint_error_px is not None:
        parts.append(f"the goal keypoints' likeliest patch {report.first_frame_keypoint_error_px:.1f} px from the "
                     f"named cube (median), nearest it in {100 * report.first_frame_keypoint_named_cube:.0f}% of "
                     "the cameras that see it")
    return "".join(f"; {part}" for part in parts)


def _other_images(report: OfflineError) -> str:
    if report.other_images_error_rad is None:
        return ""
    return f"; given another demo's camera images: {report.other_images_error_rad:.4f} rad"
