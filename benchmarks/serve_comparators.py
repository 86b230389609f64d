"""The two policy servers `vla bench serve` compares gRPC against, written from their public descriptions.

- openpi-style: a websocket server; the client sends a msgpack-encoded dict of numpy arrays, the server
  answers a msgpack dict holding "actions". Arrays travel as {"__ndarray__": raw bytes, "dtype", "shape"}.
  The server greets each connection with a msgpack metadata dict first; the handler runs the policy
  inline in its asyncio handler (one event loop, one connection per client).
- OpenVLA-style: FastAPI served by uvicorn, POST /act with a JSON body; arrays travel json_numpy-style
  ({"__numpy__": base64, "dtype", "shape"}) and the reply is JSON holding the actions the same way.
  The endpoint is a plain `def` (FastAPI runs it on its thread pool), as a blocking model call would be.

Both get their best reasonable setup: no websocket compression, no uvicorn access log, keep-alive
HTTP connections from the client (stdlib http.client), one connection per client.
Heavy imports (websockets, msgpack, fastapi, uvicorn) happen inside the functions that need them.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import json
import socket
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from policies.base import Policy

ACT_PATH = "/act"


def bound_socket(host: str = "127.0.0.1") -> socket.socket:
    """A TCP socket bound to a free port chosen now (handed to the server: no race). proto=IPPROTO_TCP as
    getaddrinfo gives it: asyncio switches Nagle off (TCP_NODELAY) only on sockets that say so, and a
    server started on host/port (uvicorn.run, websockets.serve) has it off."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    return sock


# -- msgpack with numpy arrays (openpi-style) ----------------------------------------------
def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        return {"__ndarray__": array.tobytes(), "dtype": array.dtype.str, "shape": list(array.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot msgpack {type(obj).__name__}")


def _unpack_hook(obj: dict) -> Any:
    if "__ndarray__" in obj:
        return np.frombuffer(obj["__ndarray__"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
    return obj


def msgpack_pack(obj: Any) -> bytes:
    import msgpack

    return msgpack.packb(obj, default=_pack_default, use_bin_type=True)


def msgpack_unpack(data: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(data, object_hook=_unpack_hook, raw=False)


# -- JSON with numpy arrays (json_numpy-style) ---------------------------------------------
def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        return {"__numpy__": base64.b64encode(array.tobytes()).decode("ascii"), "dtype": array.dtype.str,
                "shape": list(array.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot JSON-encode {type(obj).__name__}")


def _json_hook(obj: dict) -> Any:
    if "__numpy__" in obj:
        data = base64.b64decode(obj["__numpy__"])
        return np.frombuffer(data, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"])
    return obj


def json_dumps(obj: Any) -> bytes:
    return json.dumps(obj, default=_json_default).encode()


def json_loads(data: bytes | str) -> Any:
    return json.loads(data, object_hook=_json_hook)


def decode_json_tree(obj: Any) -> Any:
    """Apply the json_numpy hook to an already-parsed JSON value (what FastAPI hands the endpoint)."""
    if isinstance(obj, dict):
        obj = {key: decode_json_tree(value) for key, value in obj.items()}
        return _json_hook(obj)
    if isinstance(obj, list):
        return [decode_json_tree(value) for value in obj]
    return obj


# -- openpi-style websocket + msgpack ------------------------------------------------------
def run_websocket_server(policy_factory: Callable[[], Policy], sock: socket.socket, started: Callable[[dict], None],
                         wait_for_stop: Callable[[], None]) -> None:
    """Serve on `sock` until wait_for_stop() returns (it is run on a worker thread); blocks.
    started(info) is called once the server accepts connections."""
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    async def handler(websocket) -> None:
        policy = policy_factory()  # each connection is one client, with its own policy state
        policy.reset("")
        await websocket.send(msgpack_pack({"server": "openpi-style websocket+msgpack"}))
        while True:
            try:
                message = await websocket.recv()
            except ConnectionClosed:
                return
            observation = msgpack_unpack(message)
            chunk = policy.act(observation)
            await websocket.send(msgpack_pack({"actions": chunk.actions}))

    async def main() -> None:
        async with serve(handler, sock=sock, compression=None, max_size=None, ping_interval=None):
            started({"event_loop": type(asyncio.get_running_loop()).__module__})
            await asyncio.get_running_loop().run_in_executor(None, wait_for_stop)

    asyncio.run(main())


class WebsocketClient:
    """One openpi-style client: connect, read the server's metadata, then act(observation) -> actions."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        from websockets.sync.client import connect

        # entered as a context manager (websockets >= 17.1 warns on bare connect()); close() exits it
        self.websocket = connect(f"ws://{host}:{port}", compression=None, max_size=None, proxy=None,
                                 ping_interval=None).__enter__()
        self.metadata = msgpack_unpack(self.websocket.recv())

    def act(self, observation: dict) -> np.ndarray:
        self.websocket.send(msgpack_pack(observation))
        reply = msgpack_unpack(self.websocket.recv())
        return np.asarray(reply["actions"], dtype=np.float32)

    @staticmethod
    def request_bytes(observation: dict) -> int:
        return len(msgpack_pack(observation))

    def close(self) -> None:
        self.websocket.__exit__(None, None, None)


# -- OpenVLA-style FastAPI + JSON ----------------------------------------------------------
def make_fastapi_app(policy_factory: Callable[[], Policy]):
    from fastapi import FastAPI
    from fastapi.responses import Response

    app = FastAPI()
    policy = policy_factory()  # OpenVLA's deploy.py holds one model for every caller
    policy.reset("")

    def act(payload: dict[str, Any]) -> Response:  # FastAPI parses the JSON body into this dict
        observation = decode_json_tree(payload["observation"])
        chunk = policy.act(observation)
        return Response(content=json_dumps({"actions": chunk.actions}), media_type="application/json")

    app.post(ACT_PATH)(act)
    return app


def run_fastapi_server(policy_factory: Callable[[], Policy], sock: socket.socket, started: Callable[[dict], None],
                       wait_for_stop: Callable[[], None]) -> None:
    """Serve on `sock` with uvicorn until wait_for_stop() returns; blocks. started(info) names uvicorn's
    HTTP implementation (h11 or httptools) once it accepts connections."""
    import uvicorn

    config = uvicorn.Config(make_fastapi_app(policy_factory), log_level="warning", access_log=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="uvicorn", daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn stopped before it started")
        thread.join(0.01)
    started({"http_protocol": config.http_protocol_class.__name__, "loop_setting": str(config.loop)})
    wait_for_stop()
    server.should_exit = True
    thread.join(10.0)


class HttpJsonClient:
    """One OpenVLA-style client on a keep-alive connection: POST /act {"observation": ...} -> actions."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.connection = http.client.HTTPConnection(host, port, timeout=10.0)
        self.connection.connect()
        self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def act(self, observation: dict) -> np.ndarray:
        body = json_dumps({"observation": observation, "instruction": observation.get("instruction", "")})
        self.connection.request("POST", ACT_PATH, body=body, headers={"Content-Type": "application/json"})
        response = self.connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"POST {ACT_PATH}: HTTP {response.status}: {data[:200]!r}")
        return np.asarray(json_loads(data)["actions"], dtype=np.float32)

    @staticmethod
    def request_bytes(observation: dict) -> int:
        return len(json_dumps({"observation": observation, "instruction": observation.get("instruction", "")}))

    def close(self) -> None:
        self.connection.close()


# -- bare grpcio: what the library itself costs for this payload ---------------------------
FLOOR_SERVICE, FLOOR_METHOD = "vla.bench.Floor", "Act"


def run_bare_grpc_server(request_bytes: bytes, reply_bytes: bytes, threads: int,
                         started: Callable[[dict], None], wait_for_stop: Callable[[], None]) -> None:
    """grpcio with one generic unary method answering `reply_bytes` to `request_bytes`: no protobuf parsing,
    no validation, no sessions, no policy. The same thread-pool server and options as policies/server.py,
    so its throughput is the ceiling any Python gRPC servicer can reach with this payload."""
    from concurrent import futures

    import grpc

    from robots.transport import server_options

    def act(request: bytes, context) -> bytes:
        if len(request) != len(request_bytes):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"expected {len(request_bytes)} bytes")
        return reply_bytes

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads), options=server_options())
    handler = grpc.unary_unary_rpc_method_handler(act)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(FLOOR_SERVICE, {FLOOR_METHOD: handler}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    started({"port": port})
    wait_for_stop()
    server.stop(1.0).wait()


class BareGrpcClient:
    """Sends pre-serialized request bytes, gets the reply bytes back: nothing encoded or decoded per call."""

    def __init__(self, port: int, request_bytes: bytes, reply_size: int):
        import grpc

        from robots.transport import channel_options

        self.request_bytes, self.reply_size = request_bytes, reply_size
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=channel_options())
        self.call = self.channel.unary_unary(f"/{FLOOR_SERVICE}/{FLOOR_METHOD}")

    def act(self) -> bytes:
        reply = self.call(self.request_bytes, timeout=10.0)
        if len(reply) != self.reply_size:
            raise RuntimeError(f"the bare gRPC server answered {len(reply)} bytes, expected {self.reply_size}")
        return reply

    def close(self) -> None:
        self.channel.close()
