"""Turning a --policy argument into a Policy for a given environment."""

from __future__ import annotations

from policies.base import Policy

SIM_ONLY = {"expert"}
KNOWN = ("expert", "hold")


def make_policy(spec: str, env) -> Policy:
    """`expert` (privileged scripted expert, sim only) or `hold` (keeps the current pose).

    Checkpoint directories, `default` and `grpc://HOST:PORT` come with the VLA model and
    the gRPC service; until then they are refused with the list of what works.
    """
    if spec == "expert":
        from sim.experts.scripted import ScriptedExpert

        return ScriptedExpert(env)
    if spec == "hold":
        from policies.hold import HoldPolicy

        return HoldPolicy()
    raise ValueError(f"unknown policy {spec!r}; available now: {', '.join(KNOWN)} "
                     "(checkpoint directories, 'default' and grpc://HOST:PORT are not supported yet)")
