"""A file server on 127.0.0.1 for download tests: real HTTP, routes set by the test, every request recorded."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        server: Mirror = self.server  # type: ignore[assignment]
        server.requests.append(self.path)
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        body, declared = route
        self.send_response(200)
        self.send_header("Content-Length", str(declared))
        self.end_headers()
        self.wfile.write(body)  # HTTP/1.0: the connection closes after this, short or not

    def log_message(self, *args: object) -> None:
        pass


class Mirror(ThreadingHTTPServer):
    """Serves `serve`d bodies under `base` (no trailing slash), with a true or a false Content-Length."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, tuple[bytes, int]] = {}
        self.requests: list[str] = []
        self.base = f"http://127.0.0.1:{self.server_address[1]}/mirror"

    def serve(self, name: str, body: bytes, declared_length: int | None = None) -> None:
        self.routes[f"/mirror/{name}"] = (body, len(body) if declared_length is None else declared_length)


@contextlib.contextmanager
def running_mirror() -> Iterator[Mirror]:
    server = Mirror()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def closed_port() -> int:
    """A local port nothing listens on: connections to it are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
