"""A stand-in Kubernetes API server on 127.0.0.1 for the worker's pod-deletion-cost patches: it records each
PATCH (path, content type, bearer token, JSON body) in a queue the test waits on, and can answer the next few
with 500."""

from __future__ import annotations

import json
import queue
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from jobengine_worker.deletion_cost import ANNOTATION


@dataclass
class Seen:
    method: str
    path: str
    content_type: str
    authorization: str
    body: Any

    @property
    def cost(self) -> str:
        """The pod-deletion-cost the patch sets."""
        return str(self.body["metadata"]["annotations"][ANNOTATION])


class KubeApiStandIn:
    """Use as a context manager; `url` is its base URL, `seen` the PATCHes received, in order."""

    def __init__(self) -> None:
        self.seen: queue.Queue[Seen] = queue.Queue()
        self.fail_next = 0  # answer this many next PATCHes with 500
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="kube-api-stand-in", daemon=True)

    def __enter__(self) -> KubeApiStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fail(self) -> bool:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                return True
            return False

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_PATCH(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.seen.put(Seen("PATCH", self.path, self.headers["Content-Type"],
                                       self.headers["Authorization"], json.loads(raw)))
                if stand_in._fail():
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = b'{"kind": "Pod"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
