"""The last-hop safety filter and the robot specs it enforces."""

import numpy as np
import pytest

from robots.safety import (ACCELERATION, GRIPPER, JOINT_LIMIT, NONFINITE, TRACKING, VELOCITY, WRONG_SHAPE,
                           SafetyFilter)
from robots.spec import ROBOT_SPECS, get_robot_spec, panda_spec

DT = 0.05


@pytest.fixture(scope="module")
def spec():
    return panda_spec(image_size=64)


@pytest.fixture
def home(spec):
    """(7,) a pose well inside the limits."""
    return (spec.lower() + spec.upper()) / 2


def test_panda_spec_from_robosuite_mjcf(spec):
    assert spec.num_joints == 7 and spec.action_dim == 8
    assert spec.joint_lower[0] == pytest.approx(-2.8973) and spec.joint_upper[3] == pytest.approx(-0.0698)
    assert spec.max_velocity == (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)
    assert [c.name for c in spec.cameras] == ["agentview", "robot0_eye_in_hand"]
    assert spec.camera("agentview").height == 64


def test_unknown_robot_lists_the_known_ones():
    with pytest.raises(ValueError, match="known robots: panda"):
        get_robot_spec("ur5")
    assert set(ROBOT_SPECS) == {"panda"}


def test_robots_package_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, robots.spec, robots.safety, robots.codec, robots.client, robots.driver, robots.transport, "
            "robots.sessions, robots.batching; robots.spec.panda_spec(); "
            "assert 'torch' not in sys.modules and 'robosuite' not in sys.modules, 'heavy import'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_command_within_limits_passes_unchanged(spec, home):
    safety = SafetyFilter(spec)
    command = np.append(home + 0.01, 0.5)
    result = safety.filter(command, home, DT)
    np.testing.assert_allclose(result.command, command)
    assert result.clipped == ()


def test_joint_limits_are_clipped(spec):
    safety = SafetyFilter(spec)
    at_upper = spec.upper() - 1e-3
    result = safety.filter(np.append(spec.upper() + 1.0, 0.0), at_upper, DT)
    assert JOINT_LIMIT in result.clipped
    assert np.all(result.command[:7] <= spec.upper())


def test_velocity_limit_bounds_the_step_from_rest_and_in_motion(spec, home):
    from dataclasses import replace

    safety = SafetyFilter(replace(spec, max_tracking_error=10.0))  # the measured arm stays put here
    far = np.append(home + 1.0, 0.0)
    steps = []
    for _ in range(40):
        result = safety.filter(far, home, DT)
        steps.append(result.command[:7].copy())
    moves = np.abs(np.diff(np.vstack([home, *steps]), axis=0))
    assert np.all(moves <= np.asarray(spec.max_velocity) * DT + 1e-9)
    velocity = np.diff(np.vstack([home, *steps]), axis=0) / DT
    assert np.all(np.abs(np.diff(velocity, axis=0)) <= np.asarray(spec.max_acceleration) * DT + 1e-9)
    assert VELOCITY in result.clipped or np.allclose(result.command[:7], far[:7])


def test_first_step_is_acceleration_limited(spec, home):
    result = SafetyFilter(spec).filter(np.append(home + 0.1, 0.0), home, DT)
    assert ACCELERATION in result.clipped
    step = np.abs(result.command[:7] - home)
    np.testing.assert_allclose(step, np.minimum(0.1, np.asarray(spec.max_acceleration) * DT * DT))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_command_is_rejected_and_holds(spec, home, bad):
    safety = SafetyFilter(spec)
    first = safety.filter(np.append(home, 0.3), home, DT).command
    command = np.append(home + 0.05, 0.0)
    command[2] = bad
    result = safety.filter(command, home, DT)
    assert NONFINITE in result.clipped and result.rejected
    np.testing.assert_allclose(result.command, first)


def test_nan_without_history_holds_the_measured_joints(spec, home):
    result = SafetyFilter(spec).filter(np.full(8, np.nan), home, DT, current_gripper=0.7)
    np.testing.assert_allclose(result.command, np.append(home, 0.7))


def test_wrong_length_is_rejected(spec, home):
    result = SafetyFilter(spec).filter(np.zeros(5), home, DT)
    assert WRONG_SHAPE in result.clipped
    np.testing.assert_allclose(result.command[:7], home)


@pytest.mark.parametrize("gripper,expected", [(-0.5, 0.0), (1.7, 1.0)])
def test_gripper_is_clipped(spec, home, gripper, expected):
    result = SafetyFilter(spec).filter(np.append(home, gripper), home, DT)
    assert GRIPPER in result.clipped and result.command[-1] == expected


def test_bad_measurement_or_dt_raises(spec, home):
    safety = SafetyFilter(spec)
    with pytest.raises(ValueError, match="current joints"):
        safety.filter(np.append(home, 0.0), np.full(7, np.nan), DT)
    with pytest.raises(ValueError, match="dt"):
        safety.filter(np.append(home, 0.0), home, 0.0)


def test_reset_forgets_the_previous_target(spec, home):
    safety = SafetyFilter(spec)
    safety.filter(np.append(home + 0.5, 0.0), home, DT)
    safety.reset()
    moved = home + 0.2
    result = safety.filter(np.append(moved, 0.0), moved, DT)
    np.testing.assert_allclose(result.command[:7], moved)


def test_targets_of_a_blocked_arm_stay_within_the_tracking_bound(spec, home):
    from dataclasses import replace

    safety = SafetyFilter(replace(spec, max_tracking_error=0.1))
    command = np.append(home + 0.5, 0.0)
    for _ in range(40):  # the arm does not move: the target must not wind up towards +0.5
        result = safety.filter(command, home, DT)
    assert np.all(np.abs(result.command[:7] - home) <= 0.1 + 1e-9) and TRACKING in result.clipped
    moved = home + 0.3  # once the arm follows, the target leads it by the bound again
    for _ in range(40):
        result = safety.filter(command, moved, DT)
    np.testing.assert_allclose(result.command[:7], moved + 0.1, atol=1e-9)
