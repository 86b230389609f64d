"""`vla teleop` with a person: robosuite device adapters, the session's keys, the live view's frame, the
no-display error and the session loop, all headless (fake drivers, keys and windows)."""

import importlib.util
from dataclasses import dataclass, field

import h5py
import numpy as np
import pytest

import sim.teleop
import sim.teleop_view
from sim.dataset import open_dataset, read_episode
from sim.env import EnvConfig
from sim.replay import replay_file
from sim.teleop import ScriptedOperator, TeleopCommand
from sim.teleop_devices import (KEYBOARD_SCALE, SIX_DOF_SCALE, DeviceUnavailable, RobosuiteDevice,
                                open_driver)
from sim.teleop_keys import Action, Effect, SessionState, action_for_key, on_action, on_step, on_take_end
from sim.teleop_session import run_teleop_session
from sim.teleop_view import compose_frame, display_problem
from vla.cli import main

IMAGE = 64
ENTER, ESC = 13, 27


# -- device adapters -------------------------------------------------------------------------------------------

@dataclass
class FakeDriver:
    """Speaks robosuite.devices.Device's get_controller_state()/start_control() from a list of states."""

    states: list
    starts: int = 0

    def start_control(self) -> None:
        self.starts += 1

    def get_controller_state(self) -> dict:
        dpos, raw_drotation, grasp, reset = self.states.pop(0)
        return {"dpos": np.array(dpos, dtype=float), "rotation": np.eye(3), "grasp": grasp, "reset": reset,
                "raw_drotation": np.array(raw_drotation, dtype=float), "base_mode": 0}


def test_a_key_press_becomes_millimetres_and_a_held_button_closes_the_gripper():
    driver = FakeDriver([((0.05, 0.0, -0.05), (0.1, 0.0, 0.0), 0, 0),   # x and z presses, a roll press
                         ((0.0, 0.0, 0.0), (0.0, 0.1, 0.1), 1, 0)])     # pitch and yaw presses, gripper closed
    device = RobosuiteDevice(driver, KEYBOARD_SCALE, "keyboard")
    device.start(env=None)
    assert driver.starts == 1
    first, second = device.read(), device.read()
    np.testing.assert_allclose(first.dpos, [0.005, 0.0, -0.005])  # 0.05 per press -> 5 mm
    np.testing.assert_allclose(first.drot, [0.0, 0.05, 0.0])  # roll lands on world y, as robosuite maps it
    np.testing.assert_allclose(second.drot, [0.05, 0.0, -0.05])  # pitch -> x, yaw -> -z
    assert first.close is False and second.close is True


def test_full_deflection_of_a_six_dof_device_is_a_centimetre_a_step():
    device = RobosuiteDevice(FakeDriver([((0.005, -0.005, 0.0), (0.0, 0.0, 0.005), 1.0, 0)]), SIX_DOF_SCALE, "x")
    command = device.read()
    np.testing.assert_allclose(command.dpos, [0.01, -0.01, 0.0])
    np.testing.assert_allclose(command.drot, [0.0, 0.0, -0.05])
    assert command.close


def test_the_device_reset_button_rearms_the_driver_and_is_taken_once():
    driver = FakeDriver([((0, 0, 0), (0, 0, 0), 0, 1), ((0, 0, 0), (0, 0, 0), 0, 0)])
    device = RobosuiteDevice(driver, SIX_DOF_SCALE, "spacemouse")
    assert not device.take_reset_request()
    device.read()
    assert driver.starts == 1  # robosuite disables a driver after its reset
    assert device.take_reset_request() and not device.take_reset_request()


def test_missing_libraries_and_hardware_are_one_line_errors_naming_the_fix(monkeypatch):
    def no_pynput():
        raise ImportError("this platform is not supported: ('failed to acquire X connection')\nTry one of ...")

    with pytest.raises(DeviceUnavailable) as error:
        open_driver("keyboard", no_pynput)
    assert "--device keyboard: pynput cannot listen" in str(error.value) and "\n" not in str(error.value)
    if importlib.util.find_spec("hid") is None:
        with pytest.raises(DeviceUnavailable, match=r"--device gamepad: .*`pip install hidapi`"):
            open_driver("gamepad", lambda: pytest.fail("built without hid"))

    def no_spacemouse():
        raise OSError("No 3Dconnexion devices found")

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: object())  # as if hid were installed
    with pytest.raises(DeviceUnavailable) as error:
        open_driver("spacemouse", no_spacemouse)
    message = str(error.value)
    assert message.startswith("--device spacemouse: no SpaceMouse found (hid.open failed: No 3Dconnexion")
    assert "plug one in" in message and "--device keyboard / scripted" in message and "\n" not in message


# -- keys ------------------------------------------------------------------------------------------------------

def test_keys_map_to_actions_and_others_are_ignored():
    assert action_for_key(ENTER) is Action.TOGGLE_RECORDING and action_for_key(ESC) is Action.QUIT
    assert action_for_key(ord("k")) is Action.KEEP and action_for_key(ord("d")) is Action.DISCARD
    assert action_for_key(-1) is None and action_for_key(ord("e")) is None  # e: robosuite's roll key
    assert action_for_key(0xFF61) is None and action_for_key(0xFF52) is None  # Print, Up: not `a`, not `R`


def test_a_take_is_kept_only_after_success_unless_failures_are_kept():
    state, effect = on_action(SessionState(seed=5), Action.TOGGLE_RECORDING, keep_failures=False)
    assert state.recording and effect is Effect.NONE
    state = on_step(on_step(state))
    refused, effect = on_action(state, Action.KEEP, keep_failures=False)
    assert effect is Effect.NONE and refused.kept == 0 and "no success" in refused.message and refused.recording
    kept, effect = on_action(state, Action.KEEP, keep_failures=True)
    assert effect is Effect.WRITE_AND_START and (kept.kept, kept.seed, kept.steps, kept.recording) == (1, 6, 0, False)
    ended = on_take_end(state, success=True)
    assert ended.ended and not ended.recording
    assert on_action(ended, Action.TOGGLE_RECORDING, False)[0].recording is False  # an ended take stays over
    kept, effect = on_action(ended, Action.KEEP, keep_failures=False)
    assert effect is Effect.WRITE_AND_START and kept.kept == 1 and not kept.ended


def test_discard_rerecord_and_new_scene_move_seeds_and_count_dropped_takes():
    take = on_step(SessionState(seed=5, recording=True, kept=2))
    discarded, effect = on_action(take, Action.DISCARD, False)
    assert effect is Effect.START and (discarded.seed, discarded.discarded, discarded.kept) == (6, 1, 2)
    again, effect = on_action(take, Action.RERECORD, False)
    assert effect is Effect.START and (again.seed, again.discarded, again.steps) == (5, 1, 0)
    fresh = SessionState(seed=5)
    assert on_action(fresh, Action.DISCARD, False)[1] is Effect.NONE  # nothing recorded to discard
    new_scene, effect = on_action(fresh, Action.NEW_SCENE, False)
    assert effect is Effect.START and (new_scene.seed, new_scene.discarded) == (6, 0)
    assert on_action(take, Action.QUIT, False)[1] is Effect.QUIT
    assert on_action(take, None, False) == (take, Effect.NONE)


# -- the live view ---------------------------------------------------------------------------------------------

def _observation(size: int = 32) -> dict:
    rng = np.random.default_rng(0)
    return {"agentview_image": rng.integers(0, 255, (size, size, 3), dtype=np.uint8),
            "robot0_eye_in_hand_image": np.full((size, size, 3), 200, dtype=np.uint8),
            "robot0_joint_pos": np.zeros(7)}


def test_the_frame_shows_both_cameras_upscaled_with_the_state_written_on_it():
    observation, state = _observation(), SessionState(seed=3, recording=True, steps=7, kept=1, discarded=2)
    frame = compose_frame(observation, state, instruction="pick up the red cube", episodes=10, max_steps=200,
                          display_height=128)
    scale = 4  # 32 px cameras to about 128 px
    assert frame.dtype == np.uint8 and frame.shape[1] == 2 * 32 * scale and frame.shape[0] > 32 * scale
    front = np.kron(observation["agentview_image"], np.ones((scale, scale, 1), dtype=np.uint8))[..., ::-1]
    cameras = frame[:32 * scale]
    np.testing.assert_array_equal(cameras[60:, :128], front[60:])  # the front camera, BGR, below the badge
    np.testing.assert_array_equal(cameras[60:, 128:], 200)  # the wrist camera
    assert (cameras[:40, :128] != front[:40]).any()  # the recording badge
    panel = frame[32 * scale:]
    assert len(np.unique(panel.reshape(-1, 3), axis=0)) > 2  # text drawn on the caption panel
    paused = compose_frame(observation, SessionState(seed=3, steps=7, kept=1, discarded=2),
                           instruction="pick up the red cube", episodes=10, max_steps=200, display_height=128)
    assert paused.shape == frame.shape and (paused[:40] != frame[:40]).any()  # REC vs PAUSED
    refused = on_action(state, Action.KEEP, keep_failures=False)[0]
    with_message = compose_frame(observation, refused, instruction="pick up the red cube", episodes=10,
                                 max_steps=200, display_height=128)
    assert with_message.shape[0] > frame.shape[0]  # the message's lines


def test_no_display_is_found_without_display_variables_on_linux():
    assert display_problem({}, "linux") == "DISPLAY and WAYLAND_DISPLAY are unset"
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0"}, "linux") is None
    assert display_problem({"DISPLAY": ":0"}, "linux") is None and display_problem({}, "darwin") is None


def test_a_human_device_without_a_display_fails_before_building_anything(tmp_path, monkeypatch, capsys):
    built = []
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setitem(sim.teleop.DEVICES, "keyboard", lambda seed: built.append(seed))
    out = tmp_path / "t.hdf5"
    assert main(["teleop", "--task", "lift", "--device", "keyboard", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vla teleop: error: --device keyboard needs a display")
    assert "DISPLAY and WAYLAND_DISPLAY are unset" in err and "use --device scripted" in err and "xvfb-run" in err
    assert built == [] and not out.exists()


# -- the session loop ------------------------------------------------------------------------------------------

@dataclass
class FakeView:
    """Keys from a list, then `then` forever (None: the test fails instead of looping); frames are counted."""

    keys: list
    then: int | None = None
    frames: list = field(default_factory=list)
    closed: bool = False

    def show(self, frame) -> None:
        self.frames.append(frame.shape)

    def poll_key(self, wait_ms: int) -> int:
        if self.keys:
            return self.keys.pop(0)
        assert self.then is not None and len(self.frames) < 400, "the session kept asking for keys"
        return self.then

    def close(self) -> None:
        self.closed = True


@dataclass
class RisingDevice:
    """Lifts the gripper 5 mm a step; counts reads."""

    reads: int = 0

    def start(self, env) -> None:
        pass

    def read(self) -> TeleopCommand:
        self.reads += 1
        return TeleopCommand(np.array([0.0, 0.0, 0.005]), np.zeros(3), False)


def test_the_session_rerecords_discards_pauses_and_writes_the_kept_take(tmp_path):
    keys = [ENTER, -1, -1, ord("a"),  # 3 steps, then again: same seed, discarded
            ENTER, -1, ord("d"),  # 2 steps, discarded: seed 6
            ord("n"),  # a new scene before anything was recorded: seed 7, not counted
            ENTER, -1, ENTER, -1, -1, ENTER, -1, ord("k")]  # 2 steps, stopped for 2 ticks, 2 steps, kept
    view, device, out = FakeView(list(keys)), RisingDevice(), tmp_path / "live.hdf5"
    report = run_teleop_session("lift", device, 1, str(out), view, seed=5, keep_failures=True,
                                env_config=EnvConfig(image_size=IMAGE, max_steps=30), device_name="keyboard")
    assert [(e["seed"], e["steps"], e["kept"]) for e in report.episodes] == [(5, 3, False), (5, 2, False),
                                                                              (7, 4, True)]
    assert (report.kept, report.discarded) == (1, 2)
    assert device.reads == 3 + 2 + 4 + 2 + 1  # recorded steps, 2 stopped ticks, the `n` tick
    height, width, _ = view.frames[0]
    assert len(view.frames) == len(keys) and width == 2 * IMAGE * 6 and height > IMAGE * 6  # 64 px x 6 + caption
    with h5py.File(out) as f:
        assert list(f["data"]) == ["demo_0"] and f["data/demo_0/actions"].shape == (4, 8)
    episode = read_episode(out, "demo_0")
    assert episode.seed == 7 and episode.extra_attrs["teleop"] == "keyboard"
    assert np.all(np.diff(episode.observations["robot0_eef_pos"][:, 2]) > 0)  # it rose while recording


def test_only_a_successful_take_is_kept_by_default(tmp_path):
    """k is pressed every tick once recording: it is refused until the scripted operator succeeds."""
    view, out = FakeView([ENTER], then=ord("k")), tmp_path / "success.hdf5"
    report = run_teleop_session("lift", ScriptedOperator(seed=0), 1, str(out), view, seed=3,
                                env_config=EnvConfig(image_size=IMAGE, max_steps=150))
    assert report.kept == 1 and report.episodes[0]["success"] and report.episodes[0]["kept"]
    episode = read_episode(out, open_dataset(out).demo_names[0])
    assert episode.success and episode.actions.shape == (report.episodes[0]["steps"], 8)
    assert episode.actions.shape[0] > 20 and {"grasp", "lift"} <= set(episode.subtasks)
    assert all(result.faithful for result in replay_file(str(out), progress=False))  # recorded like run_episode


def test_vla_teleop_keyboard_opens_the_live_session_and_closes_its_window(tmp_path, monkeypatch, capsys):
    view = FakeView([ESC])
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setitem(sim.teleop.DEVICES, "keyboard", lambda seed: RisingDevice())
    monkeypatch.setattr(sim.teleop_view, "OpenCvWindow", lambda title: view)
    out = tmp_path / "none.hdf5"
    assert main(["teleop", "--task", "lift", "--device", "keyboard", "--out", str(out),
                 "--image-size", str(IMAGE)]) == 0
    assert "kept 0 teleoperated episodes (0 discarded)" in capsys.readouterr().out
    assert view.closed and len(view.frames) == 1 and not out.exists()
