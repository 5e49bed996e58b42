"""A real HTTPS server on 127.0.0.1 for tests: fixed replies by path, recording what it was asked."""

from __future__ import annotations

import socket
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream_bytes: int = 0  # send this much without a Content-Length, until the client hangs up
    stall: bool = False  # never answer


class HttpsServer(ThreadingHTTPServer):
    """Serves ``routes`` by path, recording connections, requests (path and headers) and the SNI names seen."""

    daemon_threads = True

    def __init__(self, host: str, cert: Path, key: Path) -> None:
        super().__init__((host, 0), _Handler)
        self.routes: dict[str, Reply] = {}
        self.connections = 0
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.sni: list[str | None] = []
        self.streamed = 0
        self.released = threading.Event()
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.context.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"https://{host}:{self.port}{path}"

    def get_request(self) -> tuple[socket.socket, Any]:
        request = super().get_request()
        self.connections += 1
        return request

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake happens in the connection's own thread, so a stalled client never blocks accept().
        self.RequestHandlerClass(self.context.wrap_socket(request, server_side=True), client_address, self)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hanging up mid-answer is what several tests do on purpose

    def stop(self) -> None:
        self.released.set()
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: HttpsServer
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.requests.append((self.path, dict(self.headers)))
        reply = self.server.routes.get(unquote(self.path.split("?")[0]), Reply(404, b"not found"))
        if reply.stall:
            self.server.released.wait(10)
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.stream_bytes:
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            while self.server.streamed < reply.stream_bytes:
                self.wfile.write(b"x" * 65536)
                self.server.streamed += 65536
            return
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
