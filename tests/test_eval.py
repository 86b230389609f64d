import json
import subprocess
import sys

import imageio.v2 as imageio
import numpy as np
import pytest

from sim.stats import wilson_interval
from vla.cli import main


def test_wilson_interval_known_values():
    low, high = wilson_interval(49, 50)
    assert low == pytest.approx(0.8950, abs=1e-3) and high == pytest.approx(0.9965, abs=1e-3)
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-3)
    assert wilson_interval(5, 10)[0] == pytest.approx(1 - wilson_interval(5, 10)[1])
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_eval_writes_json_and_videos(tmp_path, capsys):
    report_path, video_dir = tmp_path / "eval.json", tmp_path / "videos"
    code = main(["eval", "--task", "lift", "--policy", "expert", "--episodes", "2", "--seed", "5",
                 "--image-size", "64", "--json", str(report_path), "--video", str(video_dir), "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "success rate" in out and "100.0%" in out and str(video_dir) in out
    report = json.loads(report_path.read_text())
    assert report["task"] == "lift" and report["policy"] == "expert" and report["seed"] == 5
    assert report["episodes"] == 2 and report["successes"] == 2 and report["success_rate"] == 1.0
    assert report["ci95"] == pytest.approx(list(wilson_interval(2, 2)), abs=1e-4)
    assert [d["seed"] for d in report["episodes_detail"]] == [5, 6]
    assert all(d["success"] and d["steps"] > 0 for d in report["episodes_detail"])
    assert all(d["closed_gripper"] and d["approach_offset_cm"] < 2.0 for d in report["episodes_detail"])
    assert report["failures"] == {"failed": 0, "never_closed_gripper": 0, "closed_at_cube": 0,
                                  "median_approach_offset_cm": None}
    videos = sorted(video_dir.glob("*.mp4"))
    assert len(videos) == 2
    frames = imageio.mimread(videos[0], memtest=False)
    assert len(frames) == report["episodes_detail"][0]["steps"] + 1
    assert frames[0].shape[0] > 2 * 64  # caption bar above the upscaled cameras


def test_hold_policy_fails_and_is_reported(tmp_path, capsys):
    report_path = tmp_path / "hold.json"
    assert main(["eval", "--task", "pick-color", "--policy", "hold", "--episodes", "1", "--image-size", "32",
                 "--json", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    assert report["successes"] == 0 and report["episodes_detail"][0]["steps"] == 150
    detail = report["episodes_detail"][0]
    assert detail["closed_gripper"] is False and detail["approach_offset_cm"] > 2.0  # the arm stays at home
    assert report["failures"]["failed"] == 1 and report["failures"]["never_closed_gripper"] == 1
    assert "1 of 1 never closed the gripper, 0 closed it within 3 cm of the cube" in capsys.readouterr().out


def test_failures_are_summarized_from_the_episodes():
    from sim.approach import summarize_failures

    details = [{"success": True, "closed_gripper": True, "approach_offset_cm": 1.0},
               {"success": False, "closed_gripper": False, "approach_offset_cm": 9.0},
               {"success": False, "closed_gripper": True, "approach_offset_cm": 5.0},
               {"success": False, "closed_gripper": True, "approach_offset_cm": 2.0},
               {"success": False, "closed_gripper": False, "approach_offset_cm": 1.0},
               {"success": False, "closed_gripper": False, "approach_offset_cm": None},
               {"success": False, "steps": 3}]  # a report written before these fields: not counted
    assert summarize_failures(details) == {"failed": 5, "never_closed_gripper": 3, "closed_at_cube": 1,
                                           "median_approach_offset_cm": 3.5}


def test_failures_of_long_horizon_episodes_say_how_many_steps_were_done():
    from sim.approach import summarize_failures

    details = [{"success": False, "closed_gripper": True, "approach_offset_cm": 1.0, "steps_done": steps}
               for steps in (0, 1, 1)] + [{"success": True, "closed_gripper": True, "approach_offset_cm": 1.0,
                                            "steps_done": 2}]
    assert summarize_failures(details)["steps_done"] == {"0": 1, "1": 2}


class _TowerScene:
    """What ApproachTracker reads of an env, the goal's steps holding as the test says."""

    def __init__(self):
        from types import SimpleNamespace

        from sim.tasks import Goal

        self.goal = Goal("green", "red", then=(Goal("blue", "green"),))
        self.task = SimpleNamespace(cube_bodies={})  # no approach to track: only the steps
        self.holding = set()
        self.suite_env = SimpleNamespace(step_holds=lambda target, base: target in self.holding)


def test_a_step_counts_once_it_has_stood_with_the_earlier_ones_not_when_it_touches_its_base_for_a_moment():
    from sim.approach import SETTLED_STEPS, ApproachTracker

    scene = _TowerScene()
    tracker = ApproachTracker(scene)

    def hold(cubes, steps):
        scene.holding = set(cubes)
        for _ in range(steps):
            tracker.observe({}, np.zeros(8))

    hold({"green"}, 2)  # brushed its base while carried, or slid off after the release
    hold(set(), 5)
    assert tracker.summary()["steps_done"] == 0
    hold({"blue"}, SETTLED_STEPS + 5)  # the top cube on the middle one, which lies on the table: not in order
    assert tracker.summary()["steps_done"] == 0
    hold({"green"}, SETTLED_STEPS)
    hold(set(), 3)
    assert tracker.summary()["steps_done"] == 1  # stood long enough: done, even if it falls later
    hold({"green", "blue"}, 1)  # the episode ends the moment the tower stands
    assert tracker.summary()["steps_done"] == 2


def test_a_long_horizon_eval_counts_the_steps_done_in_order(tmp_path, capsys):
    report_path = tmp_path / "tower.json"
    assert main(["eval", "--task", "stack-three", "--policy", "expert:fixed-yaw", "--episodes", "1", "--seed", "5",
                 "--image-size", "32", "--json", str(report_path), "--quiet"]) == 0
    (detail,) = json.loads(report_path.read_text())["episodes_detail"]
    assert detail["success"] and detail["steps_done"] == 2
    assert main(["eval", "--task", "stack-three", "--policy", "hold", "--episodes", "1", "--seed", "5",
                 "--image-size", "32", "--json", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    assert report["episodes_detail"][0]["steps_done"] == 0 and report["failures"]["steps_done"] == {"0": 1}
    assert "1 after 0" in capsys.readouterr().out


def test_unknown_policy_is_a_clear_error(capsys):
    assert main(["eval", "--task", "lift", "--policy", "nosuch", "--episodes", "1", "--quiet"]) == 2
    assert "unknown policy 'nosuch'" in capsys.readouterr().err


def test_help_is_instant_and_imports_nothing_heavy():
    code = ("import sys, vla.cli; vla.cli.build_parser(); "
            "heavy = [m for m in ('torch', 'robosuite', 'mujoco', 'h5py') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
