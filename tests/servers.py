"""Real local servers for tests: an HTTP file server with scripted failures, a webhook receiver and an S3-compatible one."""

from __future__ import annotations

import json
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """``handler`` on a free loopback port, in a thread, for the ``with`` block; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def flaky_file_server(path: Path, failures: int = 0, status: int = 503,
                      require: tuple[str, str] | None = None) -> Iterator[tuple[str, list[int]]]:
    """Serve ``path`` at /<name>; the first ``failures`` requests get ``status``; with ``require``
    (header, value), requests without that header get 401. Yields (url, statuses sent)."""
    sent: list[int] = []
    body = path.read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            code = status if len(sent) < failures or status == 404 else 200
            if require and self.headers.get(require[0]) != require[1]:
                code = 401
            sent.append(code)
            self.send_response(code)
            self.send_header("Content-Length", str(len(body) if code == 200 else 0))
            self.end_headers()
            if code == 200:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with _serving(Handler) as port:
        yield f"http://127.0.0.1:{port}/{path.name}", sent


@contextmanager
def webhook_receiver() -> Iterator[tuple[str, list[dict]]]:
    """A local endpoint that records the JSON body of every POST. Yields (url, bodies received)."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            received.append(json.loads(body or b"{}"))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with _serving(Handler) as port:
        yield f"http://127.0.0.1:{port}/hook", received


@contextmanager
def s3_server() -> Iterator[str]:
    """A moto S3 server on loopback, in its own process; yields its endpoint URL.

    Not a thread of the test process: deltalake's native calls may hold the GIL while they wait
    for the server, which a server thread in the same process could then never answer.
    """
    import subprocess
    import sys
    import time
    import urllib.request

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        server.terminate()
        server.wait(timeout=10)
