"""A stand-in for the API Gateway Management API, for handler tests: records
what the functions post and close, and answers 410 for connections marked gone."""

from __future__ import annotations

import http.server
import json
import threading
from collections import defaultdict
from urllib.parse import unquote


class FakeManagementApi:
    def __init__(self) -> None:
        self.posts: dict[str, list[dict]] = defaultdict(list)
        self.closed: list[str] = []
        self.gone: set[str] = set()
        self.failing: dict[str, int] = {}  # connection -> how many more posts answer 500
        self.opening: dict[str, int] = {}  # connection -> how many more posts answer 410 before it opens
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _connection(self) -> str:
                return unquote(self.path.rsplit("/@connections/", 1)[1])

            def _answer(self, status: int) -> None:
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

            def do_POST(self):
                connection = self._connection()
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if connection in api.gone:
                    return self._answer(410)
                if api.opening.get(connection, 0) > 0:  # $connect has not returned yet
                    api.opening[connection] -= 1
                    return self._answer(410)
                if api.failing.get(connection, 0) > 0:
                    api.failing[connection] -= 1
                    return self._answer(500)
                api.posts[connection].append(json.loads(body))
                self._answer(200)

            def do_GET(self):  # GetConnection
                connection = self._connection()
                self._answer(410 if connection in api.gone or api.opening.get(connection, 0) > 0 else 200)

            def do_DELETE(self):
                connection = self._connection()
                if connection in api.gone:
                    return self._answer(410)
                api.closed.append(connection)
                api.gone.add(connection)
                self._answer(204)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/dev"

    def reset(self) -> None:
        self.posts.clear()
        self.closed.clear()
        self.gone.clear()
        self.failing.clear()
        self.opening.clear()

    def stop(self) -> None:
        self._server.shutdown()
