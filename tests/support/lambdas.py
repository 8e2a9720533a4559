"""Loads a function's handler the way Lambda does (its folder as the task root)
and builds events from the samples in events/."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.tokens import b64json

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Context:
    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def load_handler(folder: str):
    # Every function's module is app.py: load each under its own name.
    spec = importlib.util.spec_from_file_location(f"fn_{folder}", ROOT / "functions" / folder / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.lambda_handler


def new_execution_environment() -> None:
    """Empties the caches the layer keeps per execution environment (settings, AWS clients, the token verifier,
    ...), so the next invocation reads the environment variables afresh, as after a cold start.

    The caches are found, not listed: one added to the layer later cannot be left out. Each carries the name of
    the module that defines it, so one merely imported from elsewhere is cleared once, where it lives.
    """
    for name, module in list(sys.modules.items()):
        if name != "session_core" and not name.startswith("session_core."):
            continue
        for value in vars(module).values():
            if getattr(value, "__module__", None) == name and callable(getattr(value, "cache_clear", None)):
                value.cache_clear()


def sample_event(name: str) -> dict:
    return json.loads((ROOT / "events" / f"{name}.json").read_text())


def http_event(name: str, *, session_id: str | None = None, body=None, sub: str | None = "speaker-1",
               headers: dict | None = None, raw_body: str | None = None) -> dict:
    """The sample event of `name`, re-aimed at a session, caller and body."""
    event = copy.deepcopy(sample_event(name))
    if session_id is not None:
        event["pathParameters"] = {"sessionId": session_id}
        event["rawPath"] = event["requestContext"]["http"]["path"] = f"/dev/sessions/{session_id}"
    if body is not None:
        event["body"] = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    if sub is None:
        del event["requestContext"]["authorizer"]
    else:
        claims["sub"] = sub
        event["headers"]["authorization"] = f"Bearer {verified_token(claims)}"
    event["headers"].update(headers or {})
    event["requestContext"]["requestId"] = f"req-{uuid.uuid4().hex[:12]}"
    return event


def verified_token(claims: dict, header: dict | None = None) -> str:
    """The token behind API Gateway's claims (numeric claims as numbers again), as the function sees it: the
    signature API Gateway verified is not checked again, so a placeholder stands for it."""
    payload = {k: int(v) if k in ("exp", "iat", "nbf", "auth_time") else v for k, v in claims.items()}
    return f"{b64json(header or {'kid': 'sample', 'alg': 'RS256'})}.{b64json(payload)}.c2lnbmF0dXJl"


def ws_event(name: str, *, connection_id: str | None = None, who: dict | None = None, body=None,
             raw_body: str | None = None, route: str | None = None, query: dict | None = None) -> dict:
    """The WebSocket sample event of `name` for another connection, caller or message."""
    event = copy.deepcopy(sample_event(name))
    context = event["requestContext"]
    context["requestId"] = f"req-{uuid.uuid4().hex[:12]}"
    if connection_id is not None:
        context["connectionId"] = connection_id
    if who is not None:
        context["authorizer"] = {"principalId": who.get("userId") or "anonymous", **who}
    if route is not None:
        context["routeKey"] = route
    if body is not None:
        event["body"] = json.dumps(body)
    if raw_body is not None:
        event["body"] = raw_body
    if query is not None:
        event["queryStringParameters"] = query
    return event
