"""Human input devices for `vla teleop`: robosuite's drivers (robosuite.devices Keyboard, SpaceMouse, DualSense)
behind our Device protocol (sim.teleop_command).

A robosuite driver runs its own listener (pynput for keys, a hid thread for the SpaceMouse and the DualSense)
and answers get_controller_state() with a dict: dpos (3,) (position change since the last call), raw_drotation
(3,) (roll, pitch, yaw change), grasp (0/1) and reset (0/1). RobosuiteDevice reads that once per control step
and turns it into a TeleopCommand with a DeviceScale, in robosuite's own axis convention (world x/y/z for dpos;
raw_drotation is permuted as robosuite's Device.input2action does before it drives an arm).

Scales, per 20 Hz control step (EndEffectorTeleop then clips to 2 cm and 0.1 rad a step):
- keyboard: one key press is dpos 0.05 / rotation 0.1 in robosuite's units -> 5 mm / 0.05 rad; held keys
  repeat at the OS's rate (~30/s: ~15 cm/s).
- spacemouse, gamepad: full deflection is 0.005 a step -> 10 mm (0.2 m/s) / 0.05 rad (1 rad/s).
robosuite's reset (keyboard `q`, SpaceMouse right button, DualSense square) re-arms the driver and is kept as
a request the session takes (take_reset_request) to start a new scene.

Nothing is imported from robosuite.devices until a device is opened: it needs a display (pynput) and,
for the SpaceMouse and the gamepad, the `hid` module. A missing piece is a DeviceUnavailable with one line
that names the problem and the fix.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Callable

import numpy as np

from sim.teleop_command import TeleopCommand

# robosuite's raw (roll, pitch, yaw) deltas -> a world-frame axis-angle: x <- pitch, y <- roll, z <- -yaw
# (the permutation robosuite.devices.Device.input2action applies for a gripper that starts facing down).
ROBOSUITE_ROTATION_TO_WORLD = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])

OTHER_DEVICES = "or use --device keyboard / scripted"

# What a robosuite driver reads of its `env` while we use it: the robots' arms (for its grasp and active-arm
# bookkeeping). Its input2action, which needs a real robosuite env, is not called: EndEffectorTeleop drives.
SINGLE_ARM_ENV = SimpleNamespace(robots=[SimpleNamespace(arms=["right"])])


class DeviceUnavailable(RuntimeError):
    """A device cannot be opened; the message is one line: what is missing and how to get it."""


@dataclass(frozen=True)
class DeviceScale:
    """From a robosuite controller state to a command: metres per unit of dpos, radians per unit of
    raw_drotation."""

    metres_per_unit: float
    radians_per_unit: float


KEYBOARD_SCALE = DeviceScale(metres_per_unit=0.1, radians_per_unit=0.5)
SIX_DOF_SCALE = DeviceScale(metres_per_unit=2.0, radians_per_unit=10.0)


class RobosuiteDevice:
    """Device over a robosuite driver: anything with start_control() and get_controller_state()."""

    def __init__(self, driver, scale: DeviceScale, name: str):
        self.driver, self.scale, self.name = driver, scale, name
        self.reset_requested = False

    def start(self, env) -> None:
        self.driver.start_control()  # zeroes the driver's pose and opens the gripper

    def read(self) -> TeleopCommand:
        state = self.driver.get_controller_state()
        if state["reset"]:
            self.reset_requested = True
            self.driver.start_control()  # robosuite disables a driver after its reset until re-armed
        dpos = np.asarray(state["dpos"], dtype=np.float64) * self.scale.metres_per_unit
        raw_rotation = np.asarray(state["raw_drotation"], dtype=np.float64)
        drot = ROBOSUITE_ROTATION_TO_WORLD @ raw_rotation * self.scale.radians_per_unit
        return TeleopCommand(dpos, drot, bool(state["grasp"]))

    def take_reset_request(self) -> bool:
        """Whether the operator pressed the device's reset since the last call."""
        requested, self.reset_requested = self.reset_requested, False
        return requested


def keyboard_device(seed: int = 0) -> RobosuiteDevice:
    """robosuite's Keyboard (arrows, `.` `;`, e-r, y-h, o-p, space; seed: unused, a person is not seeded)."""
    driver = open_driver("keyboard", lambda: _driver_class("keyboard", "Keyboard")(env=SINGLE_ARM_ENV))
    return RobosuiteDevice(driver, KEYBOARD_SCALE, "keyboard")


def spacemouse_device(seed: int = 0) -> RobosuiteDevice:
    """robosuite's SpaceMouse, found by its 3Dconnexion ids (seed: unused)."""
    driver = open_driver("spacemouse", lambda: _driver_class("spacemouse", "SpaceMouse")(env=SINGLE_ARM_ENV))
    return RobosuiteDevice(driver, SIX_DOF_SCALE, "spacemouse")


def gamepad_device(seed: int = 0) -> RobosuiteDevice:
    """robosuite's DualSense (PlayStation 5) gamepad (seed: unused)."""
    driver = open_driver("gamepad", lambda: _driver_class("dualsense", "DualSense")(env=SINGLE_ARM_ENV))
    return RobosuiteDevice(driver, SIX_DOF_SCALE, "gamepad")


HUMAN_DEVICES: dict[str, Callable[..., RobosuiteDevice]] = {
    "keyboard": keyboard_device, "spacemouse": spacemouse_device, "gamepad": gamepad_device}

_HARDWARE = {"spacemouse": "no SpaceMouse found", "gamepad": "no DualSense gamepad found"}
_PLUG_IN = {"spacemouse": "plug one in (on Linux your user needs access to /dev/hidraw*: a udev rule)",
            "gamepad": "plug one in by USB or pair it by Bluetooth (on Linux your user needs access to "
                       "/dev/hidraw*: a udev rule)"}


def open_driver(name: str, build: Callable[[], object]):
    """build() with its failures as one-line DeviceUnavailable errors for `--device name`."""
    if name in _HARDWARE and importlib.util.find_spec("hid") is None:
        raise DeviceUnavailable(f"--device {name}: the `hid` module robosuite reads it with is not installed; "
                                f"`pip install hidapi` (and your system's hidapi library), {OTHER_DEVICES}")
    try:
        return build()
    except ImportError as error:  # pynput: no X connection (robosuite.devices imports it for every driver)
        raise DeviceUnavailable(f"--device {name}: pynput cannot listen to the keyboard ({_first_line(error)}); "
                                f"run in a desktop session (X11 or XWayland), or use --device scripted") from None
    except OSError as error:  # hid.open, or no device found
        if name not in _HARDWARE:
            raise DeviceUnavailable(f"--device {name}: {_first_line(error)}; or use --device scripted") from None
        raise DeviceUnavailable(f"--device {name}: {_HARDWARE[name]} (hid.open failed: {_first_line(error)}); "
                                f"{_PLUG_IN[name]}, {OTHER_DEVICES}") from None


def _driver_class(module: str, name: str) -> type:
    """robosuite.devices.<module>.<name>, imported quietly (robosuite.devices prints to stdout when `hid`
    is missing, even for the keyboard)."""
    with contextlib.redirect_stdout(io.StringIO()):
        return getattr(importlib.import_module(f"robosuite.devices.{module}"), name)


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
