"""API Gateway's request limits for both local APIs, and what a refused client sees.

From API Gateway's quota tables:
- HTTP API: the request line and header values together at most 10,240 bytes; a payload at most
  10 MB (http_api.MAX_BODY_BYTES).
- WebSocket API: the URL (query string included) at most 4,096 characters; messages at most 128 KB
  (ws_api.MAX_MESSAGE_BYTES).
The documentation gives no status for the first and the third; the local stack answers 431 and 414 with
API Gateway's JSON `{"message": ...}` shape. Whatever is refused, nothing the client sent is echoed.
"""

from __future__ import annotations

import json

from aiohttp import web, web_protocol, web_server
from aiohttp.http_exceptions import LineTooLong

HTTP_REQUEST_LINE_AND_HEADERS = 10_240
WEBSOCKET_URL_CHARACTERS = 4_096

# aiohttp's own parser limits sit well above API Gateway's, so our checks (and their clean answers)
# decide; beyond these, aiohttp refuses the request and the handler below answers it.
PARSER_LIMITS = {"max_field_size": 64 * 1024, "max_line_size": 64 * 1024}


def request_line_and_headers(request: web.BaseRequest) -> int:
    """Bytes of the request line and of every header value, as API Gateway counts them."""
    line = f"{request.method} {request.rel_url.raw_path_qs} HTTP/{request.version.major}.{request.version.minor}"
    return len(line.encode()) + sum(len(value.encode()) for value in request.headers.values())


def too_large(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=json.dumps({"message": message}).encode(),
                        content_type="application/json")


class _QuietRequestHandler(web_protocol.RequestHandler):
    """aiohttp answers a request it cannot parse with plain text that quotes the request (a header's first
    bytes: a token); API Gateway answers with its JSON message and quotes nothing."""

    def handle_error(self, request, status=500, exc=None, message=None):
        if status == 500:
            return super().handle_error(request, status, exc, message)  # its 500 text names nothing sent
        response = too_large(431, "Request Header Fields Too Large") if isinstance(exc, LineTooLong) \
            else too_large(400, "Bad Request")
        response.force_close()
        return response


def install_quiet_parser_errors() -> None:
    """Every aiohttp server of this process answers parse errors as above (the gateways and the AWS proxy)."""
    web_server.RequestHandler = _QuietRequestHandler
