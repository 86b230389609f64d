"""Simulation: robosuite/MuJoCo tasks as gymnasium envs, scripted experts, recording, evaluation.

Importing `sim` registers the task ids with gymnasium (a dictionary insert, nothing is
built): `gymnasium.make("vla/PickColor-v0")`.
"""

from sim.registration import make, register_envs

register_envs()

__all__ = ["make", "register_envs"]
