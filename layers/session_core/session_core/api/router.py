"""Routes an HTTP API (payload 2.0) event to its handler and builds Lambda's proxy response.

Each HTTP function serves one route. Powertools' event handler would do the same, but importing it loads
every resolver it has (AppSync, Bedrock, VPC Lattice...) and every event data class: about a tenth of a
cold start (docs/performance.md, "Cold starts"). This is the part of it these functions use: route rules
with `<name>` parameters matched on the path without its stage (a parameter is one path segment, as
API Gateway passes it), a hook before every route, one error handler, and the response shape.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

JSON = "application/json"
# A `<name>` in a rule matches one path segment of the characters RFC 3986 allows, and those API Gateway
# decodes before passing the path on (as Powertools' resolver matches them).
_PARAMETER = re.compile(r"<(\w+)>")
_SEGMENT = r"[-._~()'!*:@,;=+&$%<> \[\]{}|^\w]+"


class Response:
    """What a route returns: a status, an optional text body, headers."""

    def __init__(self, status_code: int, content_type: str | None = None, body: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = dict(headers or {})
        if content_type:
            self.headers.setdefault("Content-Type", content_type)

    def as_proxy_result(self) -> dict[str, Any]:
        # Lambda's proxy response for payload 2.0 (headers as one value each; no cookies set here).
        return {"statusCode": self.status_code, "body": self.body, "isBase64Encoded": False,
                "headers": self.headers, "cookies": []}


class HttpEvent:
    """The parts of a payload 2.0 event the functions read. Header names are lower case (API Gateway sends
    them so; a hand-made event may not)."""

    def __init__(self, event: Mapping) -> None:
        context = event.get("requestContext") or {}
        authorizer = context.get("authorizer") or {}
        self.headers: dict[str, str] = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
        self.raw_path: str = event.get("rawPath") or "/"
        self.route_key: str | None = event.get("routeKey")
        self.method: str = (context.get("http") or {}).get("method", "")
        self.request_id: str = context.get("requestId") or ""
        # The claims API Gateway's JWT authorizer verified; {} when no authorizer ran.
        self.jwt_claims: dict = (authorizer.get("jwt") or {}).get("claims") or {}
        self.body: str | None = event.get("body")
        self.is_base64_encoded: bool = bool(event.get("isBase64Encoded"))
        stage = context.get("stage", "$default")
        # rawPath carries the stage's name unless it is $default; the routes are written without it.
        self.path = self.raw_path[len(stage) + 1:] if stage != "$default" else self.raw_path


Handler = Callable[..., Response]


class HttpRouter:
    """Routes, a hook run before the matched route (its exceptions are handled like the route's), and the
    handlers of a path no route matches and of any exception."""

    def __init__(self, *, before: Callable[[HttpRouter], None], not_found: Callable[[HttpRouter], Response],
                 on_error: Callable[[HttpRouter, Exception], Response]) -> None:
        self._routes: list[tuple[str, re.Pattern, Handler]] = []
        self._before, self._not_found, self._on_error = before, not_found, on_error
        self.current_event: HttpEvent | None = None
        self.lambda_context: object = None

    def route(self, method: str, rule: str) -> Callable[[Handler], Handler]:
        pattern = re.compile("^" + _PARAMETER.sub(lambda name: f"(?P<{name[1]}>{_SEGMENT})", rule) + "$")

        def register(handler: Handler) -> Handler:
            self._routes.append((method, pattern, handler))
            return handler

        return register

    def get(self, rule: str):
        return self.route("GET", rule)

    def post(self, rule: str):
        return self.route("POST", rule)

    def patch(self, rule: str):
        return self.route("PATCH", rule)

    def delete(self, rule: str):
        return self.route("DELETE", rule)

    def resolve(self, event: Mapping, context: object) -> dict[str, Any]:
        self.current_event, self.lambda_context = HttpEvent(event), context
        try:
            for method, pattern, handler in self._routes:
                match = pattern.match(self.current_event.path)
                if match and method == self.current_event.method:
                    self._before(self)
                    return handler(**match.groupdict()).as_proxy_result()
            return self._not_found(self).as_proxy_result()
        except Exception as error:  # noqa: BLE001 - every failure becomes an answer (on_error decides which)
            return self._on_error(self, error).as_proxy_result()
