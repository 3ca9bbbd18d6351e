"""The peers' shared plumbing: an ``http.server`` on 127.0.0.1 (an ephemeral port), served in a thread."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POLL = 0.02  # seconds: how soon shutdown() is noticed (http.server polls; its 0.5 s default slows every test)


class PeerHandler(BaseHTTPRequestHandler):
    """A keep-alive handler (the adapters' pools expect it) that answers with :meth:`reply` and logs nothing
    (pytest shows the failures, not every request)."""

    protocol_version = "HTTP/1.1"

    def request_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def lower_headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (http.server's signature)
        pass


def serve_in_thread(handler: type[BaseHTTPRequestHandler], name: str,
                    tls: ssl.SSLContext | None = None) -> tuple[ThreadingHTTPServer, threading.Thread]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(POLL,), name=name, daemon=True)
    thread.start()
    return server, thread


def stop_server(server: ThreadingHTTPServer | None, thread: threading.Thread | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()
    if thread is not None:
        thread.join(10)


class ThreadedPeer:
    """The lifecycle of a dataclass peer with ``_server`` and ``_thread`` fields: start, stop, ``with``, port.

    A peer names its request handler (``handler()``, a class bound to the peer) and may serve TLS
    (``tls_context()``)."""

    _server: ThreadingHTTPServer | None
    _thread: threading.Thread | None
    thread_name = "peer"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def tls_context(self) -> ssl.SSLContext | None:
        return None

    @property
    def port(self) -> int:
        assert self._server is not None, "the peer is not started"
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self._server, self._thread = serve_in_thread(self.handler(), self.thread_name, self.tls_context())
        return self

    def stop(self) -> None:
        stop_server(self._server, self._thread)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
