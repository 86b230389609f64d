"""Small fakes of a hierarchical policy's parts: a recording planner and controller (tests/test_intervention_rules.py,
tests/test_step_planner.py), and a policy to serve in intervention tests (tests/test_grpc_intervene.py,
tests/test_robot_interventions.py) whose planner reaches for the cube its instruction names first and whose
controller holds the measured joints."""

import threading

import numpy as np

from policies.chunking import ChunkExecutor
from policies.hierarchical import HierarchicalPolicy

PHRASES = ("reach the red cube", "reach the blue cube", "grasp", "lift", "move above the green cube", "lower",
           "release")


class Planner:
    """Proposes `answer` (changeable by the test) and records the instruction it was given."""

    def __init__(self, answer="reach the red cube"):
        self.answer, self.instructions = answer, []

    def __call__(self, observation, instruction):
        self.instructions.append(instruction)
        return self.answer


class Controller:
    def __init__(self):
        self.seen = []

    def __call__(self, observation, instruction, subtask):
        self.seen.append((instruction, subtask))
        return np.zeros((8, 8), np.float32)


def reach_named_cube(observation, instruction):
    """The planner: "reach the blue cube" for an instruction that names blue first, else the red one."""
    words = instruction.split()
    first = next((word for word in words if word in ("red", "blue")), "red")
    return f"reach the {first} cube"


class HoldingController:
    """(8, 8) chunks at the measured joints; records (instruction, subtask); `gate`, when set to an
    unset Event, blocks each call until it is set (an Act in flight)."""

    def __init__(self):
        self.seen, self.gate, self.entered = [], None, threading.Event()

    def __call__(self, observation, instruction, subtask):
        self.seen.append((instruction, subtask))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        joints = np.asarray(observation["robot0_joint_pos"], np.float32)
        return np.tile(np.append(joints, 0.0), (8, 1))


def fake_hierarchical(controller: HoldingController | None = None) -> HierarchicalPolicy:
    return HierarchicalPolicy(reach_named_cube, controller or HoldingController(), plan_every=8,
                              executor=ChunkExecutor(4), subtask_done=lambda obs, subtask: False, phrases=PHRASES)
