"""Fakes for testing the robot client loop in simulated time (robots.client.SimulatedTime): a driver that
tracks its commands perfectly (tests/test_grpc_client.py, tests/test_leader_teleop.py)."""

import numpy as np

from robots.spec import panda_spec

SPEC = panda_spec(image_size=8)
HOME = np.array([0.0, 0.2, 0.0, -2.0, 0.0, 2.0, 0.8])


class FakeDriver:
    """Tracks commands perfectly; counts stops. Its cameras are SPEC's, black."""

    def __init__(self):
        self.joints, self.gripper = HOME.copy(), 0.0
        self.commands, self.stops = [], 0

    def read_state(self):
        return self.joints.copy(), self.gripper

    def read_images(self):
        return {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in SPEC.cameras}

    def send_command(self, command):
        self.commands.append(np.array(command))
        self.joints, self.gripper = np.array(command[:-1]), float(command[-1])

    def stop(self):
        self.stops += 1
