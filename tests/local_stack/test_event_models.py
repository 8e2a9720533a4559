"""The events the local stack builds parse with Powertools' own models of API Gateway's events: the HTTP API's
payload 2.0 event, the WebSocket API's $connect, message and $disconnect events (pydantic models), and the
WebSocket REQUEST authorizer's event (Powertools' data class: its pydantic model is the REST API's shape)."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import APIGatewayAuthorizerRequestEvent
from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayProxyEventV2Model,
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)

from local_stack.http_api import HttpGateway, build_event
from local_stack.template import HttpApiSpec, JwtAuthorizer, Route
from local_stack.ws_api import WebSocketApiSpec, WebSocketGateway

AUTH = JwtAuthorizer("Jwt", "https://issuer.test/pool", ("client",), ("$request.header.Authorization",))


def http_event(route: Route, **overrides) -> dict:
    args = {
        "method": "POST", "raw_path": "/dev/sessions/s-1/speakers", "raw_query": "lang=fr&lang=de",
        "query": [("lang", "fr"), ("lang", "de")],
        "headers": [("Host", "127.0.0.1:3000"), ("User-Agent", "curl/8"), ("Content-Type", "application/json"),
                    ("Cookie", "a=1; b=2")],
        "body": b'{"name": "x"}', "source_ip": "127.0.0.1", "route": route,
        "path_parameters": {"sessionId": "s-1"}, "api": HttpApiSpec("Api", "abcdef1234", "dev", None, (route,)),
        "domain_name": "127.0.0.1:3000", "request_id": "rid=", "now": 1700000000.5,
        "claims": {"sub": "u1", "client_id": "client", "scope": "aws.cognito.signin.user.admin",
                   "cognito:groups": ["speakers"], "exp": 1700003600},
        "scopes": ["aws.cognito.signin.user.admin"],
    }
    return build_event(**(args | overrides))


def test_http_api_event_with_jwt_claims_parses_as_payload_2():
    route = Route("Api", "POST", "/sessions/{sessionId}/speakers", "Fn", AUTH)
    event = parse(http_event(route), model=APIGatewayProxyEventV2Model)
    assert event.version == "2.0" and event.routeKey == "POST /sessions/{sessionId}/speakers"
    assert event.rawQueryString == "lang=fr&lang=de" and event.queryStringParameters == {"lang": "fr,de"}
    assert event.cookies == ["a=1", "b=2"] and event.headers["content-type"] == "application/json"
    assert event.pathParameters == {"sessionId": "s-1"} and event.body == '{"name": "x"}'
    assert event.isBase64Encoded is False
    context = event.requestContext
    assert (context.apiId, context.stage, context.requestId) == ("abcdef1234", "dev", "rid=")
    assert context.http.method == "POST" and context.http.path == "/dev/sessions/s-1/speakers"
    assert str(context.http.sourceIp) == "127.0.0.1/32" and context.http.userAgent == "curl/8"
    assert context.timeEpoch.timestamp() == 1700000000.5
    assert context.authorizer.jwt.claims == {"sub": "u1", "client_id": "client",
                                             "scope": "aws.cognito.signin.user.admin",
                                             "cognito:groups": "[speakers]", "exp": "1700003600"}
    assert context.authorizer.jwt.scopes == ["aws.cognito.signin.user.admin"]


def test_http_api_event_without_authorizer_or_body_parses_as_payload_2():
    route = Route("Api", "GET", "/health", "Fn", None)
    event = parse(http_event(route, method="GET", raw_path="/dev/health", raw_query="", query=[], body=b"",
                             path_parameters={}, claims=None, scopes=None,
                             headers=[("Host", "127.0.0.1:3000"), ("Content-Type", "image/png")]),
                  model=APIGatewayProxyEventV2Model)
    assert event.requestContext.authorizer is None and event.body is None and event.cookies is None
    assert event.queryStringParameters is None and event.pathParameters is None
    assert event.requestContext.http.userAgent == ""


class Verifier:
    def verify(self, token):
        return {"sub": "u1", "client_id": "client", "token_use": "access", "exp": 1700003600}


def test_the_gateways_event_for_a_real_request_parses_as_payload_2():
    route = Route("Api", "PUT", "/sessions/{sessionId}", "Fn", AUTH)
    spec = HttpApiSpec("Api", "abcdef1234", "dev", None, (route,))

    async def main():
        invoker = RecordingInvoker()
        gateway = HttpGateway([spec], invoker, lambda authorizer: Verifier(), port=0)
        await gateway.start()
        try:
            async with aiohttp.ClientSession() as client, client.put(
                    f"{gateway.url(spec)}/sessions/s%201?x=1", data=b"\x00\x01",
                    headers={"Authorization": "Bearer t", "Content-Type": "application/octet-stream"}) as response:
                assert response.status == 200
        finally:
            await gateway.stop()
        return invoker.events["Fn"][0]

    event = parse(asyncio.run(main()), model=APIGatewayProxyEventV2Model)
    assert event.routeKey == "PUT /sessions/{sessionId}" and event.pathParameters == {"sessionId": "s 1"}
    assert event.rawPath == "/dev/sessions/s%201" and event.queryStringParameters == {"x": "1"}
    assert event.isBase64Encoded is True and event.body == "AAE="  # binary bodies arrive base64-encoded
    assert event.headers["x-forwarded-proto"] == "http" and event.headers["x-amzn-trace-id"].startswith("Root=1-")
    assert event.requestContext.authorizer.jwt.claims["client_id"] == "client"
    assert event.requestContext.authorizer.jwt.scopes is None


WS = WebSocketApiSpec(
    logical_id="Ws", api_id="wsapi12345", stage="prod", route_selection="$request.body.action",
    routes={"$connect": "Connect", "$disconnect": "Disconnect", "sendaudio": "Send", "$default": "Default"},
    two_way=frozenset(), authorizer="Authorize")


class RecordingInvoker:
    def __init__(self):
        self.events: dict[str, list[dict]] = {}
        self.disconnected = asyncio.Event()

    async def invoke(self, function, event, request_id=None):
        self.events.setdefault(function, []).append(event)
        if function == "Disconnect":
            self.disconnected.set()
        if function == "Authorize":
            return {"principalId": "user-1", "context": {"role": "speaker", "sessionId": "s-1"},
                    "policyDocument": {"Version": "2012-10-17", "Statement": [
                        {"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": event["methodArn"]}]}}
        return {"statusCode": 200}


@pytest.fixture(scope="module")
def ws_events():
    async def main():
        invoker = RecordingInvoker()
        gateway = WebSocketGateway(WS, invoker, port=0, region="eu-west-1")
        await gateway.start()
        try:
            # A connection's messages are handled in order, each before the close that follows them.
            async with aiohttp.ClientSession() as client, client.ws_connect(
                    f"{gateway.url}?token=t1&token=t2&role=speaker",
                    headers={"User-Agent": "test-agent", "X-Custom": "v"}) as ws:
                await ws.send_str(json.dumps({"action": "sendaudio", "seq": 1}))
                await ws.send_str("not json")
            await asyncio.wait_for(invoker.disconnected.wait(), 5)
        finally:
            await gateway.stop()
        return invoker.events
    return asyncio.run(main())


def test_connect_event_parses_with_its_model(ws_events):
    event = parse(ws_events["Connect"][0], model=APIGatewayWebSocketConnectEventModel)
    context = event.request_context
    assert context.route_key == "$connect" and context.event_type == "CONNECT" and context.message_direction == "IN"
    assert (context.stage, context.api_id) == ("prod", "wsapi12345")
    assert context.identity.user_agent == "test-agent" and str(context.identity.source_ip) == "127.0.0.1/32"
    assert event.headers["X-Custom"] == "v" and event.multi_value_headers["X-Custom"] == ["v"]
    assert ws_events["Connect"][0]["multiValueQueryStringParameters"]["token"] == ["t1", "t2"]
    assert ws_events["Connect"][0]["requestContext"]["authorizer"]["role"] == "speaker"
    assert event.is_base64_encoded is False


def test_message_events_parse_with_their_model(ws_events):
    routed = parse(ws_events["Send"][0], model=APIGatewayWebSocketMessageEventModel)
    fallback = parse(ws_events["Default"][0], model=APIGatewayWebSocketMessageEventModel)
    connect = ws_events["Connect"][0]["requestContext"]
    assert routed.request_context.route_key == "sendaudio" and json.loads(routed.body) == {"action": "sendaudio",
                                                                                         "seq": 1}
    assert fallback.request_context.route_key == "$default" and fallback.body == "not json"
    for message in (routed, fallback):
        assert message.request_context.event_type == "MESSAGE" and message.request_context.message_id
        assert message.request_context.connection_id == connect["connectionId"]
        assert message.request_context.connected_at.timestamp() * 1000 == connect["connectedAt"]
    assert ws_events["Send"][0]["requestContext"]["authorizer"]["principalId"] == "user-1"


def test_disconnect_event_parses_with_its_model(ws_events):
    event = parse(ws_events["Disconnect"][0], model=APIGatewayWebSocketDisconnectEventModel)
    context = event.request_context
    assert context.route_key == "$disconnect" and context.event_type == "DISCONNECT"
    assert context.disconnect_status_code == 1000  # the client closed normally
    assert context.connection_id == ws_events["Connect"][0]["requestContext"]["connectionId"]


def test_request_authorizer_event_reads_with_its_data_class(ws_events):
    raw = ws_events["Authorize"][0]
    event = APIGatewayAuthorizerRequestEvent(raw)
    assert event.get_type == "REQUEST"
    assert event.method_arn == "arn:aws:execute-api:eu-west-1:123456789012:wsapi12345/prod/$connect"
    arn = event.parsed_arn
    assert (arn.region, arn.aws_account_id, arn.api_id, arn.stage) == ("eu-west-1", "123456789012",
                                                                       "wsapi12345", "prod")
    assert event.query_string_parameters["role"] == "speaker"
    assert event.headers.get("x-custom") == "v"
    context = event.request_context
    assert (context.api_id, context.stage, context.request_id) == ("wsapi12345", "prod",
                                                                  raw["requestContext"]["requestId"])
    assert context.identity.source_ip == "127.0.0.1" and context.identity.user_agent == "test-agent"
    assert raw["requestContext"]["connectionId"] and raw["requestContext"]["routeKey"] == "$connect"
