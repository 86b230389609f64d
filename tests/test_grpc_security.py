"""Bearer tokens (required beyond loopback) and TLS / mutual TLS."""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from policies.hold import HoldPolicy
from policies.server import serve
from robots.connection import PolicyConnection, PolicyRpcError
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.proto.vla.v1 import policy_pb2_grpc as pb_grpc
from robots.spec import panda_spec
from robots.transport import TlsConfig, is_loopback

SPEC = panda_spec(image_size=8)
TOKEN = "s3cret-token"


@pytest.mark.parametrize("host,loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                           ("[::1]", True), ("0.0.0.0", False), ("::", False),
                                           ("192.168.1.5", False), ("robot.lan", False)])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_refuses_to_listen_beyond_loopback_without_a_token(host):
    with pytest.raises(ValueError, match="without a bearer token"):
        serve(HoldPolicy, SPEC, host, 0)


def test_cli_refuses_expert_and_non_loopback_without_token(capsys):
    from vla.cli import main

    assert main(["serve", "--policy", "expert"]) == 2
    assert "privileged simulator state" in capsys.readouterr().err
    assert main(["serve", "--policy", "hold", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "without a bearer token" in capsys.readouterr().err


@pytest.fixture(scope="module")
def token_server():
    handle = serve(HoldPolicy, SPEC, "0.0.0.0", 0, token=TOKEN)  # all interfaces: a token is mandatory
    handle.wait_ready(5)
    yield handle
    handle.stop(0)


@pytest.mark.parametrize("metadata", [(), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),)])
def test_missing_or_wrong_token_is_unauthenticated(token_server, metadata):
    with grpc.insecure_channel(f"127.0.0.1:{token_server.port}") as channel:
        stub = pb_grpc.PolicyServiceStub(channel)
        for call, request in ((stub.GetInfo, pb.GetInfoRequest()), (stub.StartSession, pb.StartSessionRequest())):
            with pytest.raises(grpc.RpcError) as error:
                call(request, timeout=5, metadata=metadata)
            assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        stream = stub.StreamActions(iter([pb.ActRequest()]), timeout=5, metadata=metadata)
        with pytest.raises(grpc.RpcError) as error:
            next(stream)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_right_token_works_and_health_stays_open(token_server):
    target = f"127.0.0.1:{token_server.port}"
    with PolicyConnection(target, SPEC, token=TOKEN) as connection:
        assert connection.info().robot == "panda"
        connection.start("lift")
    with grpc.insecure_channel(target) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING


def _self_signed(tmp_path, name: str, common_name: str):
    """(cert PEM bytes, key PEM bytes) for localhost / 127.0.0.1 via the openssl CLI."""
    cert, key = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "1", "-subj", f"/CN={common_name}", "-keyout", str(key), "-out", str(cert),
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=30)
    return cert.read_bytes(), key.read_bytes()


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make test certificates")
    directory = tmp_path_factory.mktemp("certs")
    return {"server": _self_signed(directory, "server", "localhost"),
            "client": _self_signed(directory, "client", "robot-1"),
            "stranger": _self_signed(directory, "stranger", "stranger")}


def test_tls(certs):
    cert, key = certs["server"]
    handle = serve(HoldPolicy, SPEC, "127.0.0.1", 0, tls=TlsConfig(cert, key))
    try:
        handle.wait_ready(5)
        with PolicyConnection(f"localhost:{handle.port}", SPEC, root_cert=cert) as connection:
            assert connection.info().robot == "panda"
        with grpc.insecure_channel(f"localhost:{handle.port}") as plaintext:
            with pytest.raises(grpc.RpcError) as error:
                pb_grpc.PolicyServiceStub(plaintext).GetInfo(pb.GetInfoRequest(), timeout=2)
            assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        handle.stop(0)


def test_mutual_tls_requires_a_trusted_client_certificate(certs):
    cert, key = certs["server"]
    client_cert, client_key = certs["client"]
    handle = serve(HoldPolicy, SPEC, "127.0.0.1", 0, tls=TlsConfig(cert, key, client_ca=client_cert))
    target = f"localhost:{handle.port}"
    try:
        handle.wait_ready(5)
        with PolicyConnection(target, SPEC, root_cert=cert, client_cert=client_cert,
                              client_key=client_key) as connection:
            assert connection.info().robot == "panda"
        for credentials in (None, certs["stranger"]):
            cert_pem, key_pem = credentials or (None, None)
            with PolicyConnection(target, SPEC, root_cert=cert, client_cert=cert_pem, client_key=key_pem,
                                  timeout_s=2) as rejected:
                with pytest.raises(PolicyRpcError) as error:
                    rejected.info()
                assert error.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        handle.stop(0)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_vla_serve_stops_gracefully_on_sigterm_and_sigint(signal_name, tmp_path):
    """Started in the background of a script, as deployments do (SIGINT then arrives ignored)."""
    vla = Path(sys.executable).parent / "vla"
    log = tmp_path / "serve.log"
    script = f"'{vla}' serve --policy hold --port 0 > '{log}' 2>&1 & echo $!; wait $!"
    proc = subprocess.Popen(["bash", "-c", script], stdout=subprocess.PIPE, text=True)
    server_pid = int(proc.stdout.readline())
    deadline = time.monotonic() + 30
    while "ready" not in (log.read_text() if log.exists() else "") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "ready (health: SERVING)" in log.read_text()
    os.kill(server_pid, getattr(signal, signal_name))
    assert proc.wait(timeout=10) == 0
    assert f"{signal_name}: stopping" in log.read_text()
