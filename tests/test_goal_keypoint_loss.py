"""Supervised goal keypoints (`vla train --goal-keypoints --goal-keypoint-loss W`): where the simulator puts
each goal cube in each camera image, and the loss that pulls the keypoints' attention there."""

import csv

import h5py
import numpy as np
import pytest
import torch

from sim.camera_projection import CameraProjector
from sim.color_cubes import CUBE_COLORS
from sim.object_positions import cube_positions, cube_qpos_addresses
from vla.cli import main
from vla.data import random_shift, shift_pixels
from vla.goal_keypoints import cell_centres, keypoint_loss

IMAGE = 32
CAMERAS = ("agentview", "robot0_eye_in_hand")


@pytest.fixture(scope="module")
def pick_file(one_demo_file):
    return one_demo_file("pick-color", 5, IMAGE)


def _recorded(path):
    with h5py.File(path, "r") as f:
        group = f["data/demo_0"]
        images = {camera: group[f"obs/{camera}_image"][()] for camera in CAMERAS}
        return group["states"][()], group.attrs["model_file"], images


def test_projected_cubes_land_on_their_colour_in_the_recorded_images(pick_file):
    states, model_xml, images = _recorded(pick_file)
    world = cube_positions(cube_qpos_addresses("pick-color", model_xml), states)
    pixels = CameraProjector(model_xml, CAMERAS, IMAGE).pixels(states, world)
    checked = 0
    for color, xy in pixels.items():
        channel = int(np.argmax(CUBE_COLORS[color][:3]))
        for camera_index, camera in enumerate(CAMERAS):
            if not np.isfinite(xy[0, camera_index]).all():
                continue
            x, y = xy[0, camera_index].astype(int)
            rgb = images[camera][0, y, x].astype(int)
            assert int(np.argmax(rgb)) == channel, (color, camera, (x, y), rgb)
            checked += 1
    assert checked >= 4  # the front camera sees all three cubes at the first frame, the wrist camera some
    assert np.isnan(pixels["red"][:, 0]).sum() == 0  # the front camera never loses a cube on the table


def test_a_point_off_the_image_or_behind_the_camera_has_no_pixel(pick_file):
    states, model_xml, _ = _recorded(pick_file)
    projector = CameraProjector(model_xml, CAMERAS, IMAGE)
    far_left_and_behind = {"far": np.tile([[0.0, 50.0, 1.0]], (2, 1)), "behind": np.tile([[10.0, 0.0, 1.0]], (2, 1))}
    projected = projector.pixels(states[:2], far_left_and_behind)
    assert np.isnan(projected["far"]).all() and np.isnan(projected["behind"]).all()
    with pytest.raises(ValueError, match="no camera 'nowhere'"):
        CameraProjector(model_xml, ("nowhere",), IMAGE)


def test_keypoint_loss_is_low_on_the_cube_cell_high_elsewhere_and_skips_unknown_pixels():
    pixels = torch.tensor([[[[9.5, 2.0], [float("nan"), float("nan")]]]])  # (B=1, N=1, slots, 2); 16 px: cell 2
    on_cube = torch.zeros(1, 1, 2, 4, 4)
    on_cube[0, 0, 0, 0, 2] = 20.0
    loss, metrics = keypoint_loss(on_cube, pixels, image_size=16)
    assert float(loss) < 1e-3 and metrics["keypoint_error_px"] == pytest.approx(0.5, abs=1e-3)  # centre (10, 2)
    elsewhere = torch.zeros(1, 1, 2, 4, 4)
    elsewhere[0, 0, 0, 3, 0] = 20.0
    far_loss, far = keypoint_loss(elsewhere, pixels, image_size=16)
    assert float(far_loss) > 19 and far["keypoint_error_px"] > 10
    base_looks_anywhere = on_cube.clone()
    base_looks_anywhere[0, 0, 1] = torch.randn(4, 4) * 5
    assert float(keypoint_loss(base_looks_anywhere, pixels, 16)[0]) == pytest.approx(float(loss))
    nothing, empty = keypoint_loss(on_cube, torch.full_like(pixels, float("nan")), 16)
    assert float(nothing) == 0.0 and empty == {}


def test_cell_centres_are_row_major_pixel_x_y():
    centres = cell_centres(2, 4, 16)
    assert centres.tolist()[:2] == [[2.0, 4.0], [6.0, 4.0]] and centres.tolist()[-1] == [14.0, 12.0]


def test_shifted_pixels_follow_the_shifted_images():
    torch.manual_seed(0)
    images = torch.zeros(6, 2, 3, 16, 16, dtype=torch.uint8)
    images[:, :, :, 5, 9] = 255  # one bright pixel at x 9, y 5 in every image
    shifted, moved = random_shift(images, pad=3)
    points = shift_pixels(torch.tensor([9.0, 5.0]).expand(6, 2, 1, 2), moved, 16)
    for b in range(6):
        for n in range(2):
            y, x = np.argwhere(shifted[b, n, 0].numpy() == 255)[0]
            assert points[b, n, 0].tolist() == [x, y]
    edge = shift_pixels(torch.tensor([0.0, 0.0]).expand(1, 1, 1, 2), torch.tensor([[[-2.0, 1.0]]]), 16)
    assert torch.isnan(edge).all()  # moved off the image: no target


def test_train_with_the_keypoint_loss_and_score_its_first_frames(pick_file, tmp_path, capsys):
    args = ["train", "--data", pick_file, "--image-size", str(IMAGE), "--set", "tiny.image_grid=2", "--steps", "4",
            "--batch-size", "8", "--eval-every", "2", "--quiet", "--goal-keypoints"]
    out = tmp_path / "ck"
    assert main(args + ["--out", str(out), "--object-loss", "1", "--goal-keypoint-loss", "1"]) == 0
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    names = {r["name"] for r in rows}
    assert {"keypoint_loss", "keypoint_error_px", "val_keypoint_error_px"} <= names
    assert all(np.isfinite(float(r["value"])) for r in rows)
    assert main(["offline-error", "--policy", str(out), "--data", pick_file, "--every", "20",
                 "--json", str(tmp_path / "e.json")]) == 0
    assert "the goal keypoints' likeliest patch" in capsys.readouterr().out
    bad = ["train", "--data", pick_file, "--image-size", str(IMAGE), "--steps", "1", "--quiet",
           "--out", str(tmp_path / "bad"), "--goal-keypoint-loss", "1"]
    assert main(bad) == 2
    assert "--goal-keypoints --goal-keypoint-loss 1" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_first_frame_keypoints_score_which_cube_the_attention_picks(pick_file):
    from sim.dataset import read_episode
    from vla.config import DataConfig
    from sim.offline_error import _first_frame_keypoints

    episode = read_episode(pick_file, "demo_0")
    named = episode.goal["target"]
    world = cube_positions(cube_qpos_addresses("pick-color", episode.model_file), episode.states[:1])
    pixels = CameraProjector(episode.model_file, CAMERAS, IMAGE).pixels(episode.states[:1], world)

    class LooksAt:  # goal keypoints that always pick one colour's cube
        has_goal_keypoints = True
        config = type("Config", (), {"data": DataConfig(image_size=IMAGE)})

        def __init__(self, color):
            self.color = color

        def goal_keypoints(self, observation, instruction):
            return np.stack([pixels[self.color][0], np.zeros((2, 2))], axis=1)  # (cameras, slots, 2)

    error, share = _first_frame_keypoints(LooksAt(named), "pick-color", [episode])
    assert share == 1.0 and error == 0.0
    other = next(c for c in ("red", "green", "blue") if c != named
                 and np.isfinite(pixels[c][0, 0]).all())
    error, share = _first_frame_keypoints(LooksAt(other), "pick-color", [episode])
    assert error > 0 and share <= 0.5  # at least the front camera, which sees every cube, picks another
