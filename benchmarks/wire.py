"""A counting TCP proxy in front of the database server: what one benchmark mode costs on the wire.

    python -m benchmarks.wire UPSTREAM_HOST:PORT      prints `port N` once listening; on SIGTERM prints the counts

Every byte each way goes through it, so the counts are what a real MongoDB would be sent and send back (the
message framing included): `sent` (client to server), `received` (server to client) and `requests`, the
messages the client sent, each a server round trip (pymongo sends no fire-and-forget messages here). The
server monitors' `hello` every 10 s are counted too (a few per mode). One thread per direction per connection.
"""

import json
import signal
import socket
import sys
import threading
from dataclasses import asdict, dataclass

CHUNK = 1 << 18


@dataclass
class Direction:
    """Bytes and wire-protocol messages seen one way on one connection (a message starts with its int32 length)."""

    bytes: int = 0
    messages: int = 0
    _left: int = 0
    _head: bytes = b""

    def feed(self, data: bytes) -> None:
        self.bytes += len(data)
        i = 0
        while i < len(data):
            if self._left:
                step = min(self._left, len(data) - i)
                self._left -= step
                i += step
                continue
            take = data[i:i + 4 - len(self._head)]
            self._head += take
            i += len(take)
            if len(self._head) == 4:
                self._left = int.from_bytes(self._head, "little") - 4
                self._head = b""
                self.messages += 1


@dataclass
class Counts:
    """What a mode cost on the wire, summed over its connections."""

    sent: int = 0
    received: int = 0
    requests: int = 0
    connections: int = 0


class Proxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.directions: list[tuple[Direction, Direction]] = []
        self.lock = threading.Lock()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def serve(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.upstream)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            up, down = Direction(), Direction()
            with self.lock:
                self.directions.append((up, down))
            threading.Thread(target=pipe, args=(client, server, up), daemon=True).start()
            threading.Thread(target=pipe, args=(server, client, down), daemon=True).start()

    def counts(self) -> Counts:
        with self.lock:
            pairs = list(self.directions)
        return Counts(sum(u.bytes for u, _ in pairs), sum(d.bytes for _, d in pairs),
                      sum(u.messages for u, _ in pairs), len(pairs))


def pipe(source: socket.socket, sink: socket.socket, seen: Direction) -> None:
    try:
        while data := source.recv(CHUNK):
            seen.feed(data)
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for s in (source, sink):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main() -> None:
    host, _, port = sys.argv[1].rpartition(":")
    proxy = Proxy((host, int(port)))

    def report(*_):
        print(json.dumps(asdict(proxy.counts())), flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, report)
    print(f"port {proxy.port}", flush=True)
    proxy.serve()


if __name__ == "__main__":
    main()
