"""The peers' shared plumbing: an ``http.server`` on 127.0.0.1 (an ephemeral port), served in a thread."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

POLL = 0.02  # seconds: how soon shutdown() is noticed (http.server polls; its 0.5 s default slows every test)


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
