"""A loopback HTTP server for download tests: fixture files by path, byte ranges (resume), and a
connection that drops mid-file once where asked, as a lab network does."""
from __future__ import annotations

import http.server
import threading
from contextlib import contextmanager
from typing import Iterator, Optional


class Files(http.server.ThreadingHTTPServer):
    """Serves ``files`` by path with Range support; ``cut_after[path]`` bytes end a response early
    once (the connection drops mid-file, as a lab network does)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), Handler)
        self.files: dict[str, bytes] = {}
        self.cut_after: dict[str, int] = {}
        self.ranges: list[Optional[str]] = []

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class Handler(http.server.BaseHTTPRequestHandler):
    server: Files

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        path = self.path.split("&pageToken")[0]
        data = self.server.files.get(path)
        if data is None:
            self.send_error(404)
            return
        self.server.ranges.append(self.headers.get("Range"))
        start = int(self.headers["Range"][6:-1]) if self.headers.get("Range") else 0
        if start >= len(data) > 0:
            self.send_error(416)
            return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        cut = self.server.cut_after.pop(path, None)
        self.wfile.write(body[:cut] if cut is not None else body)
        if cut is not None:
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass



@contextmanager
def serving(host: str = "127.0.0.1") -> Iterator[Files]:
    """A running :class:`Files` server on a free port of ``host``, stopped afterwards."""
    s = Files(host)
    t = threading.Thread(target=s.serve_forever, daemon=True)
    t.start()
    try:
        yield s
    finally:
        s.shutdown()
        s.server_close()
