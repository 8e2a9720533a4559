"""HTTP API emulation: payload 2.0 events, response mapping, routing, CORS, and the gateway in-process."""

import asyncio
import base64
import json

import aiohttp
from yarl import URL
import pytest

from local_stack.http_api import (
    BadResponse,
    HttpGateway,
    Router,
    apply_cors,
    build_event,
    claim_string,
    format_time,
    map_response,
    preflight_headers,
)
from local_stack.lambdas import InvocationError
from local_stack.template import Cors, HttpApiSpec, JwtAuthorizer, Route

AUTH = JwtAuthorizer("Jwt", "https://issuer.test/pool", ("client",), ("$request.header.Authorization",))
CORS = Cors(allow_origins=("https://app.test",), allow_headers=("authorization", "content-type"),
            allow_methods=("GET", "POST", "OPTIONS"), expose_headers=("location",), max_age=600)


def route(method="GET", path="/sessions/{sessionId}", function="GetFn", authorizer=AUTH, **kw) -> Route:
    return Route("Api", method, path, function, authorizer, **kw)


def api(*routes: Route, cors: Cors | None = CORS, stage: str = "dev") -> HttpApiSpec:
    return HttpApiSpec("Api", "abcdef1234", stage, cors, routes)


def event(**overrides):
    args = {
        "method": "GET", "raw_path": "/dev/sessions/a%20b", "raw_query": "x=1&x=2&y=z",
        "query": [("x", "1"), ("x", "2"), ("y", "z")],
        "headers": [("Host", "127.0.0.1:3000"), ("User-Agent", "curl/8"), ("Accept", "a"), ("accept", "b"),
                    ("Cookie", "c1=v1; c2=v2")],
        "body": b"", "source_ip": "127.0.0.1", "route": route(), "path_parameters": {"sessionId": "a b"},
        "api": api(), "domain_name": "127.0.0.1:3000", "request_id": "rid=",
        "claims": {"sub": "u1", "exp": 1700000000, "email_verified": True, "cognito:groups": ["a", "b"]},
        "scopes": None, "now": 1700000000.123,
    }
    args.update(overrides)
    return build_event(**args)


def test_event_has_the_payload_2_shape():
    e = event()
    assert e["version"] == "2.0"
    assert e["routeKey"] == "GET /sessions/{sessionId}"
    assert e["rawPath"] == "/dev/sessions/a%20b"
    assert e["rawQueryString"] == "x=1&x=2&y=z"
    assert e["cookies"] == ["c1=v1", "c2=v2"]
    assert e["headers"] == {"host": "127.0.0.1:3000", "user-agent": "curl/8", "accept": "a,b"}
    assert e["queryStringParameters"] == {"x": "1,2", "y": "z"}
    assert e["pathParameters"] == {"sessionId": "a b"}
    assert e["isBase64Encoded"] is False and "body" not in e
    ctx = e["requestContext"]
    assert ctx["accountId"] == "123456789012" and ctx["apiId"] == "abcdef1234"
    assert ctx["authorizer"] == {"jwt": {"claims": {"sub": "u1", "exp": "1700000000", "email_verified": "true",
                                                    "cognito:groups": "[a b]"}, "scopes": None}}
    assert ctx["domainName"] == "127.0.0.1:3000" and ctx["domainPrefix"] == "127"
    assert ctx["http"] == {"method": "GET", "path": "/dev/sessions/a%20b", "protocol": "HTTP/1.1",
                           "sourceIp": "127.0.0.1", "userAgent": "curl/8"}
    assert ctx["requestId"] == "rid=" and ctx["routeKey"] == "GET /sessions/{sessionId}" and ctx["stage"] == "dev"
    assert ctx["time"] == "14/Nov/2023:22:13:20 +0000" and ctx["timeEpoch"] == 1700000000123


def test_event_without_optional_parts():
    e = event(raw_query="", query=[], headers=[("host", "h")], path_parameters={}, claims=None)
    for key in ("cookies", "queryStringParameters", "pathParameters"):
        assert key not in e
    assert "authorizer" not in e["requestContext"]


@pytest.mark.parametrize("content_type, body, expected_text", [
    ("application/json", b'{"a": "\xc3\xa9"}', True),
    ("application/json; charset=utf-8", b"{}", True),
    ("text/plain", b"hello", True),
    ("application/vnd.api+json", b"{}", True),
    ("application/x-www-form-urlencoded", b"a=1", False),
    ("image/png", b"\x89PNG", False),
    (None, b"{}", False),
    ("application/json", b"\xff\xfe", False),  # not UTF-8 after all
])
def test_body_encoding(content_type, body, expected_text):
    headers = [("content-type", content_type)] if content_type else []
    e = event(headers=headers, body=body)
    assert e["isBase64Encoded"] is not expected_text
    assert e["body"] == (body.decode() if expected_text else base64.b64encode(body).decode())


def test_claims_are_strings_like_api_gateway_sends():
    assert claim_string(1700000000) == "1700000000"
    assert claim_string(False) == "false"
    assert claim_string(["x", 1]) == "[x 1]"
    assert claim_string("s") == "s"


def test_format_time():
    assert format_time(0) == "01/Jan/1970:00:00:00 +0000"


def test_result_without_status_code_is_200_json():
    assert map_response({"a": 1}) == (200, {"Content-Type": "application/json"}, b'{"a": 1}')
    status, _, body = map_response("text")
    assert (status, body) == (200, b'"text"')


def test_full_response_mapping():
    status, headers, body = map_response({
        "statusCode": 201, "headers": {"Location": "/x", "X-Count": 3, "Content-Length": "999"},
        "cookies": ["a=1; Path=/", "b=2"], "body": base64.b64encode(b"\x00\x01").decode(), "isBase64Encoded": True})
    assert status == 201 and body == b"\x00\x01"
    assert headers["Location"] == "/x" and headers["X-Count"] == "3" and "Content-Length" not in headers
    assert headers.getall("Set-Cookie") == ["a=1; Path=/", "b=2"]
    assert map_response({"statusCode": 204})[2] == b""


@pytest.mark.parametrize("result", [
    {"statusCode": "abc"}, {"statusCode": 99}, {"statusCode": 200, "body": {"not": "a string"}},
    {"statusCode": 200, "headers": {"x": {"nested": 1}}}, {"statusCode": 200, "body": "!!", "isBase64Encoded": True},
    {"statusCode": 200, "cookies": [1]},
])
def test_malformed_responses(result):
    with pytest.raises(BadResponse):
        map_response(result)


def test_routing_prefers_specific_routes():
    router = Router([
        route("GET", "/things/{id}", "ById"), route("GET", "/things/special", "Special"),
        route("ANY", "/things/{id}", "AnyById"), route("GET", "/files/{path+}", "Greedy"),
        route("GET", "/", "Root"), route("ANY", "$default", "Default"),
    ])

    def target(method, path):
        found = router.match(method, path)
        return (found[0].function, found[1]) if found else None

    assert target("GET", "/things/special") == ("Special", {})
    assert target("GET", "/things/a%2Fb") == ("ById", {"id": "a/b"})
    assert target("DELETE", "/things/1") == ("AnyById", {"id": "1"})
    assert target("GET", "/files/a/b/c") == ("Greedy", {"path": "a/b/c"})
    assert target("GET", "/") == ("Root", {})
    assert target("POST", "/nothing/here") == ("Default", {})
    assert Router([route("GET", "/x")]).match("POST", "/x") is None
    assert Router([route("GET", "/x")]).match("GET", "/x/y") is None


def test_cors_preflight_and_response_headers():
    headers = preflight_headers(CORS, "https://app.test", "POST", "Authorization, Content-Type")
    assert dict(headers) == {"Access-Control-Allow-Origin": "https://app.test",
                             "Access-Control-Allow-Methods": "GET,POST,OPTIONS",
                             "Access-Control-Allow-Headers": "authorization,content-type",
                             "Access-Control-Max-Age": "600"}
    assert not preflight_headers(CORS, "https://evil.test", "POST", "")
    assert not preflight_headers(CORS, "https://app.test", "DELETE", "")
    assert not preflight_headers(CORS, "https://app.test", "GET", "x-unknown")
    assert preflight_headers(Cors(allow_origins=("*",), allow_methods=("*",)), "https://any.test", "PUT", "")[
        "Access-Control-Allow-Origin"] == "*"

    from multidict import CIMultiDict
    response = CIMultiDict({"Access-Control-Allow-Origin": "https://from-function.test", "X": "1"})
    apply_cors(CORS, "https://app.test", response)
    assert response["Access-Control-Allow-Origin"] == "https://app.test"
    assert response["Access-Control-Expose-Headers"] == "location"
    response = CIMultiDict({"Access-Control-Allow-Origin": "*"})
    apply_cors(CORS, "https://evil.test", response)
    assert "Access-Control-Allow-Origin" not in response


# ------------------------------------------------------------ gateway in-process


class FakeVerifier:
    def verify(self, token):
        if token != "Bearer good":
            raise ValueError("bad token")
        return {"sub": "user-1", "exp": 1700000000, "token_use": "access", "scope": "read write"}


class FakeInvoker:
    def __init__(self):
        self.events = []

    async def invoke(self, function, event, request_id=None):
        self.events.append(event)
        if function == "Fails":
            raise InvocationError({"errorType": "KeyError", "errorMessage": "secret detail"})
        if function == "Slow":
            await asyncio.sleep(5)
        if function == "Malformed":
            return {"statusCode": "nope"}
        return {"statusCode": 200, "headers": {"content-type": "application/json"}, "body": json.dumps({"ok": True})}


def run_gateway(check, spec: HttpApiSpec):
    async def main():
        invoker = FakeInvoker()
        gateway = HttpGateway([spec], invoker, lambda authorizer: FakeVerifier(), port=0)
        await gateway.start()
        try:
            async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{gateway.port}") as client:
                await check(client, invoker)
        finally:
            await gateway.stop()
    asyncio.run(main())


SPEC = api(route("GET", "/sessions/{sessionId}", "GetFn"), route("POST", "/open", "OpenFn", authorizer=None),
           route("GET", "/fails", "Fails"), route("GET", "/slow", "Slow", timeout_ms=200),
           route("GET", "/malformed", "Malformed"))


def test_gateway_answers_like_api_gateway():
    async def check(client, invoker):
        async def call(method, path, **kw):
            async with client.request(method, path, **kw) as r:
                return r.status, r.headers, await r.read()

        status, headers, body = await call("GET", "/dev/nowhere")
        assert (status, json.loads(body)) == (404, {"message": "Not Found"}) and headers["apigw-requestid"]
        assert (await call("GET", "/other-stage/sessions/1"))[0] == 404
        for auth in ({}, {"Authorization": "Bearer bad"}):
            status, headers, body = await call("GET", "/dev/sessions/1", headers=auth)
            assert (status, body) == (401, b'{"message":"Unauthorized"}')
        assert invoker.events == []

        status, headers, body = await call("GET", "/dev/sessions/s-1?a=1", headers={
            "Authorization": "Bearer good", "Origin": "https://app.test"})
        assert (status, json.loads(body)) == (200, {"ok": True})
        assert headers["Access-Control-Allow-Origin"] == "https://app.test"
        (e,) = invoker.events
        assert e["rawPath"] == "/dev/sessions/s-1" and e["pathParameters"] == {"sessionId": "s-1"}
        assert e["requestContext"]["requestId"] == headers["apigw-requestid"]
        assert e["requestContext"]["authorizer"]["jwt"] == {
            "claims": {"sub": "user-1", "exp": "1700000000", "token_use": "access", "scope": "read write"},
            "scopes": ["read", "write"]}
        assert e["headers"]["x-forwarded-for"] == "127.0.0.1" and e["headers"]["x-forwarded-proto"] == "http"

        # Control characters in a path still reach the route (the function answers, not a plain-text 404).
        status, headers, body = await call("GET", URL("/dev/sessions/a%0Ab%18", encoded=True),
                                           headers={"Authorization": "Bearer good"})
        assert (status, json.loads(body)) == (200, {"ok": True})
        assert invoker.events[-1]["pathParameters"] == {"sessionId": "a\nb\x18"}
        status, headers, body = await call("GET", URL("/dev/no%0Awhere", encoded=True))
        assert (status, json.loads(body)) == (404, {"message": "Not Found"})

        status, _, _ = await call("POST", "/dev/open", data=b"\x00binary", headers={"content-type": "image/png"})
        assert status == 200 and invoker.events[-1]["isBase64Encoded"] is True
        assert "authorizer" not in invoker.events[-1]["requestContext"]

        for path, expected in (("/dev/fails", 500), ("/dev/malformed", 500), ("/dev/slow", 503)):
            status, _, body = await call("GET", path, headers={"Authorization": "Bearer good"})
            assert status == expected
            assert b"secret detail" not in body and b"Traceback" not in body

        status, headers, body = await call("OPTIONS", "/dev/sessions/1", headers={
            "Origin": "https://app.test", "Access-Control-Request-Method": "GET"})
        assert status == 204 and headers["Access-Control-Max-Age"] == "600" and body == b""

    run_gateway(check, SPEC)


def test_two_apis_on_one_stage_are_refused():
    with pytest.raises(ValueError, match="both serve stage"):
        HttpGateway([api(), HttpApiSpec("Other", "x", "dev", None, ())], FakeInvoker(), lambda a: FakeVerifier())
