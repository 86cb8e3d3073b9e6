"""A loopback TCP proxy that can lose an answer: it forwards a request to the API, and when armed, closes the
client's connection as the API's answer arrives instead of passing it on (what a dropped connection, a proxy
timeout or a load balancer's reset looks like to a client: the server did the work, the client never heard)."""

from __future__ import annotations

import socket
import threading


class DroppingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._armed = 0
        self.dropped = 0
        self.connections = 0
        self._closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_next_answers(self, count: int = 1) -> None:
        with self._lock:
            self._armed += count

    def _take_drop(self) -> bool:
        with self._lock:
            if self._armed:
                self._armed -= 1
                self.dropped += 1
                return True
            return False

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, answers: bool) -> None:
        try:
            while data := source.recv(65536):
                if answers and self._take_drop():
                    break  # the API answered: the client gets a closed connection instead
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._closing = True
        self.server.close()
