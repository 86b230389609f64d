"""gRPC plumbing shared by the policy server and robot clients: channel options, bearer-token
authentication, TLS credentials.

Keepalive: pings every KEEPALIVE_TIME_MS, a connection whose ping is not answered within
KEEPALIVE_TIMEOUT_MS is closed, so a cut network is noticed in under 2 s (keepalive alone,
without `grpc.http2.ping_timeout_ms`, takes about a minute).
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path

import grpc

KEEPALIVE_TIME_MS = 500
KEEPALIVE_TIMEOUT_MS = 1000
# Three 256x256 RGB cameras sent raw, plus room for joints, ids and headers.
DEFAULT_MAX_MESSAGE_BYTES = 3 * 256 * 256 * 3 + 64 * 1024
AUTH_HEADER = "authorization"
UNAUTHENTICATED_METHODS = ("/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch")


def _keepalive_options() -> list[tuple[str, int]]:
    return [
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.http2.ping_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]


def server_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Options for grpc.server: message limits, keepalive, and accepting clients' frequent pings."""
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        *_keepalive_options(),
        ("grpc.http2.min_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", KEEPALIVE_TIME_MS // 2),
        ("grpc.http2.max_ping_strikes", 0),
    ]


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
                    target_name_override: str | None = None) -> list[tuple[str, object]]:
    """Options for client channels: the same message limits and keepalive, fast reconnects."""
    options: list[tuple[str, object]] = [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        *_keepalive_options(),
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
    ]
    if target_name_override:
        options.append(("grpc.ssl_target_name_override", target_name_override))
    return options


def is_loopback(host: str) -> bool:
    """True for localhost / 127.0.0.0/8 / ::1; False for wildcard and any other address."""
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bearer_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying the token (empty without one)."""
    return ((AUTH_HEADER, f"Bearer {token}"),) if token else ()


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Rejects calls without `authorization: Bearer <token>` (UNAUTHENTICATED); health checks
    stay open so orchestrators can probe. Tokens are compared in constant time."""

    def __init__(self, token: str):
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method in UNAUTHENTICATED_METHODS:
            return handler
        given = dict(handler_call_details.invocation_metadata or ()).get(AUTH_HEADER, "")
        if hmac.compare_digest(given.encode(), self._expected):
            return handler
        return handler_with(handler, _reject_unauthenticated)


def _reject_unauthenticated(request_or_iterator, context):
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token (metadata authorization)")


_HANDLER_MAKERS = {(False, False): grpc.unary_unary_rpc_method_handler,
                   (False, True): grpc.unary_stream_rpc_method_handler,
                   (True, False): grpc.stream_unary_rpc_method_handler,
                   (True, True): grpc.stream_stream_rpc_method_handler}


def behavior_of(handler: grpc.RpcMethodHandler):
    """The function behind a method handler, whichever of the four call shapes it has."""
    return handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream


def handler_with(handler: grpc.RpcMethodHandler, behavior, request_deserializer=None) -> grpc.RpcMethodHandler:
    """A handler of the same call shape and serializers as `handler` that runs `behavior` (server
    interceptors use it to wrap or replace what a method does)."""
    make = _HANDLER_MAKERS[(handler.request_streaming, handler.response_streaming)]
    return make(behavior, request_deserializer=request_deserializer or handler.request_deserializer,
                response_serializer=handler.response_serializer)


@dataclass(frozen=True)
class TlsConfig:
    """Server TLS: PEM certificate chain and key; client_ca (PEM) turns on mutual TLS."""

    cert_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(cls, cert: str | Path, key: str | Path, client_ca: str | Path | None = None) -> "TlsConfig":
        return cls(Path(cert).read_bytes(), Path(key).read_bytes(),
                   Path(client_ca).read_bytes() if client_ca else None)

    def server_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials([(self.private_key, self.cert_chain)],
                                           root_certificates=self.client_ca,
                                           require_client_auth=self.client_ca is not None)


def client_credentials(root_cert: bytes | None, client_cert: bytes | None = None,
                       client_key: bytes | None = None) -> grpc.ChannelCredentials:
    """Channel TLS credentials; client_cert + client_key for mutual TLS."""
    return grpc.ssl_channel_credentials(root_certificates=root_cert, private_key=client_key,
                                        certificate_chain=client_cert)


def read_token_file(path: str | Path) -> str:
    """The token in a file (surrounding whitespace stripped); an empty file is an error."""
    token = Path(path).read_text().strip()
    if not token:
        raise ValueError(f"token file {path} is empty")
    return token
