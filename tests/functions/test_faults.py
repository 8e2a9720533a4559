"""Fault injection into the handlers (moto behind them, like the other tests here).

- DynamoDB throttling / InternalServerError / connection failures, as they look after botocore's own
  retries, give a clean 503 SERVICE_UNAVAILABLE in the error shape (HTTP) or a SERVICE_UNAVAILABLE error
  message (WebSocket), and never a partial write (the table is compared before and after);
- Kinesis throttling in sendAudio: SERVICE_UNAVAILABLE, no record, nothing buffered;
- the JWKS endpoint down (connection refused, 500, not JSON) or hanging (accepts, never answers): a 5xx
  handshake (the authorizer raises, not "Unauthorized") within 5 s, never a 401.

The faults are injected by shadowing one operation on the shared, cached client (session_core.platform.aws.client),
so every other call still reaches moto.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from session_core.platform import aws
from session_core.platform import settings as settings_module

from tests.support import tokens
from tests.support.lambdas import http_event, ws_event

from . import test_ws_functions as ws_tests
from .test_ws_functions import kinesis_records, speaker

users = ws_tests.users  # the fixture: alice's and bob's subs and tokens

FAULTS = {
    "throttled": lambda op: ClientError({"Error": {"Code": "ProvisionedThroughputExceededException",
                                                   "Message": "Rate exceeded"}}, op),
    "throttling": lambda op: ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, op),
    "internal": lambda op: ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, op),
    "unreachable": lambda op: EndpointConnectionError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com"),
    "read-timeout": lambda op: ReadTimeoutError(endpoint_url="https://dynamodb.eu-west-1.amazonaws.com"),
}


@pytest.fixture(autouse=True)
def fresh_settings():
    from session_core.platform import auth
    settings_module.settings.cache_clear()
    auth.configured_verifier.cache_clear()
    yield
    settings_module.settings.cache_clear()
    auth.configured_verifier.cache_clear()


@pytest.fixture
def inject(monkeypatch, table):
    """inject("dynamodb", "update_item", fault): that operation raises the fault until the test ends."""
    calls = []

    def inject_(service: str, operation: str, fault: str):
        target = aws.client(service)

        def failing(**kwargs):
            calls.append(operation)
            raise FAULTS[fault]("".join(p.title() for p in operation.split("_")))
        monkeypatch.setattr(target, operation, failing)
        return calls
    return inject_


def table_snapshot() -> list[dict]:
    ddb = boto3.client("dynamodb")
    items, kwargs = [], {"TableName": "sessions-test", "ConsistentRead": True}
    while True:
        page = ddb.scan(**kwargs)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def stored_state() -> list[dict]:
    """The table as a create leaves it: a user's item of live sessions by its places only (a claim undone
    leaves the item, its `live` map as it was, with a higher `version`; an empty map holds nothing)."""
    state = []
    for item in table_snapshot():
        if item["pk"]["S"].startswith("USER#"):
            if item.get("live", {}).get("M"):
                state.append({"pk": item["pk"], "live": item["live"]})
        else:
            state.append(item)
    return state


def assert_503(result):
    status, _headers, body = result
    assert status == 503, body
    assert set(body) == {"error"} and body["error"]["code"] == "SERVICE_UNAVAILABLE", body
    assert set(body["error"]) == {"code", "message", "requestId"}
    assert "Exception" not in body["error"]["message"] and "boom" not in body["error"]["message"]


def new_session(invoke, sub):
    status, _, body = invoke("create_session", http_event("create_session", sub=sub, body={"sourceLanguage": "en"}))
    assert status == 201, body
    return body


@pytest.mark.parametrize("fault", list(FAULTS))
def test_create_under_dynamodb_faults_is_a_clean_503_and_writes_nothing(invoke, inject, fault):
    before = stored_state()
    inject("dynamodb", "put_item", fault)
    assert_503(invoke("create_session", http_event("create_session", sub="fault-sub",
                                                   body={"sourceLanguage": "en"})))
    assert stored_state() == before  # no session, and no place held in the user's cap


@pytest.mark.parametrize("fault", list(FAULTS))
def test_create_with_an_idempotency_key_under_faults_is_a_clean_503(invoke, inject, fault):
    before = stored_state()
    inject("dynamodb", "put_item", fault)
    inject("dynamodb", "transact_write_items", fault)
    assert_503(invoke("create_session", http_event("create_session", sub="fault-sub", body={"sourceLanguage": "en"},
                                                   headers={"Idempotency-Key": f"fault-{fault}-key"})))
    assert stored_state() == before


@pytest.mark.parametrize("fault", list(FAULTS))
def test_get_under_dynamodb_faults_is_a_clean_503(invoke, inject, fault):
    session = new_session(invoke, "fault-sub")
    inject("dynamodb", "get_item", fault)
    assert_503(invoke("get_session", http_event("get_session", session_id=session["sessionId"])))


@pytest.mark.parametrize("fault", list(FAULTS))
@pytest.mark.parametrize("name", ["update_session", "delete_session"])
def test_changes_under_dynamodb_faults_are_a_clean_503_and_change_nothing(invoke, inject, fault, name):
    session = new_session(invoke, "fault-sub")
    before = table_snapshot()
    inject("dynamodb", "update_item", fault)
    inject("dynamodb", "transact_write_items", fault)
    body = {"status": "paused"} if name == "update_session" else None
    assert_503(invoke(name, http_event(name, session_id=session["sessionId"], sub="fault-sub", body=body)))
    assert table_snapshot() == before


def send_audio(invoke, who, seq=1):
    import base64
    _, _, reply = invoke("ws_send_audio", ws_event("ws_send_audio", connection_id="fault-conn=", who=who,
                                                   body={"action": "sendAudio", "seq": seq,
                                                         "data": base64.b64encode(b"\x01\x02\x03").decode()}))
    return reply


@pytest.mark.parametrize("fault", ["throttled", "internal", "unreachable"])
def test_kinesis_faults_in_send_audio_answer_service_unavailable_and_forward_nothing(invoke, inject, users, fault):
    session = new_session(invoke, users["alice"]["sub"])
    before = table_snapshot()
    inject("kinesis", "put_record", fault)
    reply = send_audio(invoke, speaker(session, users))
    assert reply["type"] == "error" and reply["code"] == "SERVICE_UNAVAILABLE", reply
    assert set(reply) == {"type", "code", "message", "requestId"}
    assert kinesis_records(session["sessionId"]) == []
    assert table_snapshot() == before  # nothing buffered, no counter moved


@pytest.mark.parametrize("fault", ["throttled", "internal", "unreachable"])
def test_dynamodb_faults_in_send_audio_and_pause_answer_service_unavailable(invoke, inject, users, fault):
    session = new_session(invoke, users["alice"]["sub"])
    before = table_snapshot()
    inject("dynamodb", "get_item", fault)
    inject("dynamodb", "update_item", fault)
    reply = send_audio(invoke, speaker(session, users))
    assert reply["code"] == "SERVICE_UNAVAILABLE", reply
    _, _, reply = invoke("ws_session_control", ws_event("ws_session_control", who=speaker(session, users),
                                                        route="pause", body={"action": "pause"}))
    assert reply["type"] == "error" and reply["code"] == "SERVICE_UNAVAILABLE", reply
    assert table_snapshot() == before
    assert kinesis_records(session["sessionId"]) == []


@pytest.fixture
def hanging_server():
    """Accepts TCP connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted, stop = [], threading.Event()

    def serve():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/pool/.well-known/jwks.json"
    stop.set()
    thread.join(2)
    for conn in accepted:
        conn.close()
    server.close()


def _closed_port_url() -> str:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}/pool/.well-known/jwks.json"


@pytest.mark.parametrize("down", ["refused", "hanging", *tokens.JWKS_FAILURES])
def test_jwks_endpoint_down_is_a_quick_5xx_handshake_never_a_401_nor_a_hang(invoke, users, monkeypatch,
                                                                             hanging_server, down, emf):
    # A 401 tells the client its token is bad and not to retry; the token is fine, the service is not.
    from session_core.platform import auth
    session = new_session(invoke, users["alice"]["sub"])
    with contextlib.ExitStack() as stack:
        url = _closed_port_url() if down == "refused" else hanging_server if down == "hanging" \
            else stack.enter_context(tokens.failing_jwks(down, "/pool/.well-known/jwks.json"))
        monkeypatch.setenv("JWKS_URL", url)
        settings_module.settings.cache_clear()
        auth.configured_verifier.cache_clear()
        for token in (users["alice"]["IdToken"], users["alice"]["AccessToken"]):
            started = time.monotonic()
            # Any exception but "Unauthorized": API Gateway answers the handshake 500, which clients retry.
            with pytest.raises(Exception) as raised:
                invoke.raw("ws_authorizer", ws_event("ws_authorizer", query={
                    "sessionId": session["sessionId"], "role": "speaker", "token": token}))
            assert str(raised.value) != "Unauthorized"
            assert time.monotonic() - started < 5.0
    # Not counted as a refused token: the authorizer's error-rate alarm must see it.
    assert emf.points("AuthorizationFailure") == []
