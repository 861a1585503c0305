"""A real HTTP receiver on loopback for apprise's ``json://`` posts (http.server in a thread)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """Collects the JSON bodies POSTed to it; ``url`` is the apprise URL that reaches it."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver._cond:
                    receiver.messages.append(json.loads(body))
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet test output

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def texts(self) -> list[str]:
        with self._cond:
            return [f"{m.get('title', '')}\n{m.get('message', '')}" for m in self.messages]

    def wait_for(self, needle: str, timeout: float) -> float:
        """Seconds until a message containing ``needle`` arrived (fails after ``timeout``)."""
        start = time.monotonic()
        with self._cond:
            ok = self._cond.wait_for(lambda: any(needle in t for t in self._texts()), timeout)
        assert ok, f"no message with {needle!r} in {timeout}s; got {self.texts()}"
        return time.monotonic() - start

    def _texts(self) -> list[str]:
        return [f"{m.get('title', '')}\n{m.get('message', '')}" for m in self.messages]
