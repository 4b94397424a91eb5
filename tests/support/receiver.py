"""A stand-in for Slack: an HTTP server on 127.0.0.1 that records what the alert automations POST to it."""

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 that records the JSON body (and the path, as `path`) of every POST it gets."""

    def __init__(self, expected_path: str):
        self.bodies: list[dict] = []
        self.expected_path = expected_path
        super().__init__(("127.0.0.1", 0), _Record)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def wait_for(self, *parts: str, timeout: float = 60) -> dict:
        """The first notification whose body contains every part, waiting for it up to `timeout` seconds; it must
        have arrived at `expected_path`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for body in list(self.bodies):
                if all(part in body["body"] for part in parts):
                    assert body["path"] == self.expected_path, body["path"]
                    return body
            time.sleep(0.25)
        raise AssertionError(f"no notification containing {parts} in {timeout} s; received: {self.bodies}")


class _Record(BaseHTTPRequestHandler):
    def do_POST(self):
        self.server.bodies.append({**json.loads(self.rfile.read(int(self.headers["Content-Length"]))), "path": self.path})
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@contextmanager
def receiving(expected_path: str) -> Iterator[Receiver]:
    server = Receiver(expected_path)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
