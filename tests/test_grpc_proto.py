"""The wire protocol: generated code is current; health, reflection and GetInfo are served."""

import threading
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from policies.hold import HoldPolicy
from policies.server import SERVICE_NAME, serve
from robots.proto import generate
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.proto.vla.v1 import policy_pb2_grpc as pb_grpc
from robots.spec import panda_spec

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_generated_code_is_current(tmp_path):
    pytest.importorskip("grpc_tools")
    fresh = generate.generate(tmp_path)
    committed = Path(generate.__file__).parent / "vla" / "v1"
    for name in generate.GENERATED:
        assert (fresh / name).read_bytes() == (committed / name).read_bytes(), (
            f"{name} is stale: run `python -m robots.proto.generate`")


def test_generated_modules_import_as_a_package():
    assert pb.DESCRIPTOR.name == "vla/v1/policy.proto" and pb.DESCRIPTOR.package == "vla.v1"
    assert SERVICE_NAME == "vla.v1.PolicyService"
    assert pb_grpc.PolicyServiceStub.__module__ == "robots.proto.vla.v1.policy_pb2_grpc"
    assert pb.Image.RAW_RGB8 == 0 and pb.Image.JPEG == 1 and pb.Image.PNG == 2


def _health(channel, service=""):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


def test_health_is_not_serving_until_the_policy_is_built_then_serving():
    release = threading.Event()

    def slow_factory():
        release.wait(5)
        return HoldPolicy()

    handle = serve(slow_factory, panda_spec(image_size=32), "127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            assert _health(channel) == NOT_SERVING
            stub = pb_grpc.PolicyServiceStub(channel)
            with pytest.raises(grpc.RpcError) as error:
                stub.StartSession(pb.StartSessionRequest(robot="panda"), timeout=2)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
            release.set()
            assert handle.wait_ready(5)
            assert _health(channel) == SERVING
            assert _health(channel, SERVICE_NAME) == SERVING
    finally:
        release.set()
        handle.stop(0)


def test_reflection_and_get_info():
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    handle = serve(HoldPolicy, panda_spec(image_size=32), "127.0.0.1", 0, model_name="hold")
    try:
        handle.wait_ready(5)
        with grpc.insecure_channel(f"127.0.0.1:{handle.port}") as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            request = reflection_pb2.ServerReflectionRequest(list_services="")
            response = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=2)))
            names = {s.name for s in response.list_services_response.service}
            assert {"vla.v1.PolicyService", "grpc.health.v1.Health"} <= names
            info = pb_grpc.PolicyServiceStub(channel).GetInfo(pb.GetInfoRequest(), timeout=2)
        assert info.robot == "panda" and info.num_joints == 7 and info.control_hz == 20.0
        assert [(c.name, c.height, c.width) for c in info.cameras] == [("agentview", 32, 32),
                                                                        ("robot0_eye_in_hand", 32, 32)]
        assert info.model == "hold" and info.max_message_bytes > 3 * 256 * 256 * 3
    finally:
        handle.stop(0)
