"""Helpers shared by the gRPC server tests: a running server for a module, and the error of a failing call."""

import grpc
import pytest

from policies.server import serve
from robots.spec import panda_spec


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as error:
        call(*args, **kwargs)
    return error.value


def running_server(policy_factory, spec=None):
    """Yields a started server on a free loopback port for policy_factory (a fixture's body), then stops it."""
    handle = serve(policy_factory, spec or panda_spec(), "127.0.0.1", 0, lease_ms=60_000)
    handle.wait_ready(5)
    yield handle
    handle.stop(0)
