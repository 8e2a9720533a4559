"""moto's server keeps a client's connection open between requests (local_stack/moto_server.py,
keep_alive_request_handler), and still reads every request right: a body the application leaves unread
is skipped, not taken for the next request line; what cannot be delimited is answered and closed."""

from __future__ import annotations

import http.client
import socket
import threading
import time

import pytest
from werkzeug.serving import make_server

from local_stack.moto_server import keep_alive_request_handler


def _app(environ, start_response):
    """Answers with its path; /read reads the body and says how long it was, any other path leaves it unread."""
    said = environ["PATH_INFO"]
    if said == "/read":
        stream = environ["wsgi.input"]
        body = stream.read() if environ.get("wsgi.input_terminated") else stream.read(int(environ.get("CONTENT_LENGTH") or 0))
        said += f" {len(body)}"
    body = said.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.fixture(scope="module")
def server():
    served = make_server("127.0.0.1", 0, _app, threaded=True, request_handler=keep_alive_request_handler())
    thread = threading.Thread(target=served.serve_forever, daemon=True)
    thread.start()
    yield served.server_address[1]
    served.shutdown()
    thread.join(10)


def _ask(connection: http.client.HTTPConnection, path: str, body: bytes = b"", **headers) -> tuple[str, str | None]:
    connection.request("POST", path, body=body, headers=headers)
    response = connection.getresponse()
    return response.read().decode(), response.getheader("Connection")


def test_requests_share_one_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    assert _ask(connection, "/read", b"x" * 4400) == ("/read 4400", None)
    first = connection.sock
    assert first is not None  # the server did not close it
    assert _ask(connection, "/read", b"y" * 10) == ("/read 10", None)
    assert connection.sock is first
    connection.close()


def test_a_body_left_unread_is_skipped_before_the_next_request(server):
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    # The unread body looks like a request line: read as one, the next answer would be "/smuggled".
    assert _ask(connection, "/unread", b"POST /smuggled HTTP/1.1\r\nContent-Length: 0\r\n\r\n")[0] == "/unread"
    assert _ask(connection, "/read", b"abc") == ("/read 3", None)
    connection.close()


def _raw(port: int, request: bytes) -> bytes:
    """Sends `request` and returns all the server sends until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


@pytest.mark.parametrize("request_bytes", [
    b"POST /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",  # no length
    b"POST /read HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
], ids=["chunked", "http-1.0", "client-says-close"])
def test_what_cannot_be_kept_is_answered_then_closed(server, request_bytes):
    answer = _raw(server, request_bytes)  # returns only because the server closed the connection
    assert answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]
    assert answer.endswith(b"/read 3")
    assert b"\r\nConnection: close\r\n" in answer


def test_a_client_gone_mid_body_ends_only_its_connection(server):
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"POST /unread HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    assert b"/unread" in received
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=5)  # the server still serves others
    assert _ask(connection, "/read", b"ok") == ("/read 2", None)
    connection.close()


def test_a_client_waiting_for_100_continue_is_told_at_once(server):
    """botocore sends `Expect: 100-continue` with large S3 bodies and holds the body until told."""
    with socket.create_connection(("127.0.0.1", server), timeout=5) as sock:
        sock.sendall(b"POST /read HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"abc")
        answer = b""
        while not answer.endswith(b"/read 3"):
            answer += sock.recv(65536)
    assert b" 200 " in answer and b"Connection: close" not in answer


def test_consecutive_answers_are_not_held_back(server):
    """Headers and body leave in two sends; on a kept connection, without TCP_NODELAY the body would wait
    for the client's delayed ACK (40 ms a request)."""
    connection = http.client.HTTPConnection("127.0.0.1", server, timeout=5)
    _ask(connection, "/read", b"warm")
    started = time.perf_counter()
    for _ in range(20):
        assert _ask(connection, "/read", b"x" * 4400)[0] == "/read 4400"
    assert (time.perf_counter() - started) / 20 < 0.03  # 40 ms each when held back; a few ms otherwise
    connection.close()

