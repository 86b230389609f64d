"""A cut network (packets silently dropped, no FIN/RST) is noticed in under 2 s by keepalive,
on both ends: the client's open stream fails, and the server closes the dead connection."""

import queue
import socket
import threading
import time

import grpc
import numpy as np

from policies.hold import HoldPolicy
from policies.server import serve
from robots.codec import encode_observation
from robots.connection import PolicyConnection
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.spec import panda_spec

SPEC = panda_spec(image_size=8)


class BlackholeProxy:
    """Forwards TCP to 127.0.0.1:upstream until cut(); after that it swallows every byte."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cut_at: float | None = None
        self.server_closed_at: float | None = None
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self.cut_at = time.monotonic()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self.sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                return
            if not data:  # the peer closed its end
                if from_server and self.cut_at is not None and self.server_closed_at is None:
                    self.server_closed_at = time.monotonic()
                return
            if self.cut_at is None:
                try:
                    sink.sendall(data)
                except OSError:
                    return

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_cut_connection_is_noticed_within_two_seconds_by_client_and_server():
    handle = serve(HoldPolicy, SPEC, "127.0.0.1", 0)
    handle.wait_ready(5)
    proxy = BlackholeProxy(handle.port)
    connection = PolicyConnection(f"127.0.0.1:{proxy.port}", SPEC)
    try:
        session_id = connection.start("lift")
        images = {c.name: np.zeros((c.height, c.width, 3), np.uint8) for c in SPEC.cameras}
        obs = encode_observation(images, [0.0, 0.2, 0.0, -2.0, 0.0, 2.0, 0.8], 0.0)
        requests: queue.Queue = queue.Queue()
        stream = connection.stub.StreamActions(iter(requests.get, None))  # no deadline: keepalive must notice
        requests.put(pb.ActRequest(session_id=session_id, sequence=1, observation=obs))
        assert next(stream).sequence == 1
        proxy.cut()
        requests.put(pb.ActRequest(session_id=session_id, sequence=2, observation=obs))
        try:
            next(stream)
            raise AssertionError("the stream answered through a cut network")
        except grpc.RpcError as error:
            noticed = time.monotonic() - proxy.cut_at
            assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        print(f"client noticed after {noticed:.2f} s")
        assert noticed < 2.0, f"client noticed the cut after {noticed:.2f} s"
        deadline = proxy.cut_at + 2.0
        while proxy.server_closed_at is None and time.monotonic() < deadline + 0.5:
            time.sleep(0.02)
        assert proxy.server_closed_at is not None and proxy.server_closed_at - proxy.cut_at < 2.0, (
            "the server did not drop the dead connection within 2 s")
        requests.put(None)
    finally:
        proxy.close()
        connection.channel.close()
        handle.stop(0)
