"""Turning a --policy argument into a Policy for a given environment."""

from __future__ import annotations

from pathlib import Path

from policies.base import Policy

SIM_ONLY = {"expert"}
KNOWN = ("expert", "hold", "a checkpoint directory")


def make_policy(spec: str, env) -> Policy:
    """`expert` (privileged scripted expert, sim only), `hold` (keeps the current pose) or a
    checkpoint directory (flat VLA policy, executing half of each predicted chunk).

    `default` and `grpc://HOST:PORT` come with the shipped model and the gRPC service.
    """
    if spec == "expert":
        from sim.experts.scripted import ScriptedExpert

        return ScriptedExpert(env)
    if spec == "hold":
        from policies.hold import HoldPolicy

        return HoldPolicy()
    if Path(spec).is_dir():
        from policies.vla_policy import FlatVlaPolicy
        from vla.inference import VlaPredictor

        predictor = VlaPredictor.load(spec)
        return FlatVlaPolicy(predictor, execute_steps=max(1, predictor.chunk_size // 2))
    raise ValueError(f"unknown policy {spec!r}; available now: {', '.join(KNOWN)} "
                     "('default' and grpc://HOST:PORT are not supported yet)")
