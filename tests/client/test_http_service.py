"""SessionHttpService against httpx.MockTransport and a fake clock: requests,
retries, token refresh, the offline queue and error typing."""

from __future__ import annotations

import email.utils
import json
import uuid

import httpx
import pytest
from broadcast_client import (
    ConfigurationError,
    Conflict,
    Forbidden,
    NetworkUnavailable,
    NotFound,
    OperationQueued,
    QueueFull,
    RateLimited,
    RetryPolicy,
    ServiceUnavailable,
    Session,
    SessionApiError,
    SessionEnded,
    SessionHttpService,
    SessionLimitReached,
    StaticTokenProvider,
    Unauthorized,
    ValidationFailed,
    VersionConflict,
)

from tests.client.fakes import Clock, FakeTokens, Script, async_test, error_json, jwt, offline, session_json

BASE = "https://abc123.execute-api.eu-west-1.amazonaws.com/dev"


def make_service(transport: httpx.MockTransport, tokens=None, clock: Clock | None = None, jitter: float = 1.0,
                 **options) -> tuple[SessionHttpService, Clock]:
    clock = clock or Clock()
    service = SessionHttpService(BASE, token_provider=tokens or FakeTokens("token-1"), transport=transport,
                                 clock=clock, sleep=clock.sleep, random=lambda: jitter, **options)
    return service, clock


def respond(status: int, body: object = None, **headers: str) -> httpx.Response:
    if body is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


class FakeApi:
    """Answers like the session API while online; refuses connections while offline.
    Like the server will, it returns the same session for a repeated Idempotency-Key."""

    def __init__(self) -> None:
        self.online = True
        self.received: list[httpx.Request] = []  # requests that reached the server
        self.attempts = 0
        self._created: dict[str, dict] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.attempts += 1
        if not self.online:
            raise offline()
        self.received.append(request)
        if request.method == "POST":
            key = request.headers["Idempotency-Key"]
            body = self._created.setdefault(key, session_json(f"quiet-river-{len(self._created):03d}"))
            return respond(201, body)
        session_id = request.url.path.rsplit("/", 1)[1]
        if request.method == "DELETE":
            return respond(204)
        if request.method == "PATCH":
            return respond(200, session_json(session_id, **json.loads(request.content), version=2))
        return respond(200, session_json(session_id))

    def calls(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.received]


# ------------------------------------------------------------------ requests


@async_test
async def test_create_session_sends_body_token_and_idempotency_key():
    script = Script(respond(201, session_json(), Location="/dev/sessions/golden-eagle-427"))
    service, _ = make_service(script.transport)

    session = await service.create_session("fr", "premium")

    request = script.requests[0]
    assert (request.method, str(request.url)) == ("POST", f"{BASE}/sessions")
    assert json.loads(request.content) == {"sourceLanguage": "fr", "qualityTier": "premium"}
    assert request.headers["Authorization"] == "Bearer token-1"
    assert uuid.UUID(request.headers["Idempotency-Key"]).version == 4
    assert session == Session.from_json(session_json())
    assert session.session_id == "golden-eagle-427" and session.listener_count == 0


@async_test
async def test_create_session_sends_the_partial_results_settings_given_and_reads_them_back():
    settings = {"partialResultsEnabled": False, "minStabilityThreshold": 0.7, "maxBufferTimeout": 10.0}
    script = Script(respond(201, session_json(**settings)), respond(201, session_json()))
    service, _ = make_service(script.transport)

    session = await service.create_session("en", partial_results_enabled=False, min_stability_threshold=0.7,
                                           max_buffer_timeout=10.0)
    older = await service.create_session("en")  # from a server that predates the settings

    assert json.loads(script.requests[0].content) == {"sourceLanguage": "en", "qualityTier": "standard", **settings}
    assert json.loads(script.requests[1].content) == {"sourceLanguage": "en", "qualityTier": "standard"}
    assert (session.partial_results_enabled, session.min_stability_threshold, session.max_buffer_timeout) == (
        False, 0.7, 10.0)
    assert session.to_json() == session_json(**settings)
    assert (older.partial_results_enabled, older.min_stability_threshold, older.max_buffer_timeout) == (
        None, None, None)


@async_test
async def test_each_create_gets_its_own_idempotency_key_unless_given():
    script = Script(respond(201, session_json()), respond(201, session_json()), respond(201, session_json()))
    service, _ = make_service(script.transport)

    await service.create_session("en")
    await service.create_session("en")
    await service.create_session("en", idempotency_key="client-chosen-key")

    keys = [r.headers["Idempotency-Key"] for r in script.requests]
    assert keys[0] != keys[1] and keys[2] == "client-chosen-key"


@async_test
async def test_get_update_and_delete_requests():
    script = Script(respond(200, session_json()),
                    respond(200, session_json(status="paused", version=4)),
                    respond(204))
    service, _ = make_service(script.transport)

    assert (await service.get_session("golden-eagle-427")).status == "active"
    updated = await service.update_session("golden-eagle-427", status="paused", if_match=3)
    assert await service.delete_session("golden-eagle-427") is None

    assert script.calls() == ["GET /dev/sessions/golden-eagle-427", "PATCH /dev/sessions/golden-eagle-427",
                              "DELETE /dev/sessions/golden-eagle-427"]
    patch = script.requests[1]
    assert json.loads(patch.content) == {"status": "paused"}
    assert patch.headers["If-Match"] == '"3"'
    assert (updated.status, updated.version) == ("paused", 4)
    assert all(r.headers["Authorization"] == "Bearer token-1" for r in script.requests)


@async_test
async def test_session_id_cannot_escape_the_path():
    script = Script(respond(400, error_json("INVALID_SESSION_ID")))
    service, _ = make_service(script.transport)

    with pytest.raises(ValidationFailed):
        await service.get_session("../admin")

    assert script.requests[0].url.raw_path == b"/dev/sessions/..%2Fadmin"


@async_test
async def test_update_needs_a_change():
    service, _ = make_service(Script().transport)
    with pytest.raises(ValueError):
        await service.update_session("golden-eagle-427")


def test_base_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SESSION_API_URL", BASE + "/")
    assert SessionHttpService(token_provider=FakeTokens("t")).base_url == BASE
    monkeypatch.delenv("SESSION_API_URL")
    with pytest.raises(ConfigurationError, match="SESSION_API_URL"):
        SessionHttpService(token_provider=FakeTokens("t"))


# ------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@async_test
async def test_server_errors_are_retried_three_times_then_raised(status):
    script = Script(*[respond(status, error_json("SERVICE_UNAVAILABLE", "busy", "req-9"))] * 4)
    service, clock = make_service(script.transport)

    with pytest.raises(ServiceUnavailable) as caught:
        await service.get_session("golden-eagle-427")

    assert len(script.requests) == 4
    assert clock.sleeps == [0.5, 1.0, 2.0]  # exponential; jitter pinned to its maximum
    assert (caught.value.status, caught.value.code, caught.value.request_id) == (status, "SERVICE_UNAVAILABLE",
                                                                                 "req-9")


@async_test
async def test_a_transient_server_error_is_retried_until_success():
    script = Script(respond(503, {"message": "Service Unavailable"}), respond(200, session_json()))
    service, clock = make_service(script.transport, jitter=0.5)

    assert (await service.get_session("golden-eagle-427")).session_id == "golden-eagle-427"
    assert len(script.requests) == 2
    assert clock.sleeps == [0.25]


def test_backoff_is_full_jitter_capped_at_max_delay():
    policy = RetryPolicy(base_delay=0.5, max_delay=3.0)
    assert [policy.backoff(n, lambda: 1.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert [policy.backoff(n, lambda: 0.0) for n in range(3)] == [0.0, 0.0, 0.0]
    assert policy.backoff(2, lambda: 0.25) == 0.5


@async_test
async def test_429_retry_after_seconds_is_honoured():
    script = Script(respond(429, {"message": "Too Many Requests"}, **{"Retry-After": "7"}),
                    respond(200, session_json()))
    service, clock = make_service(script.transport)

    await service.get_session("golden-eagle-427")

    assert clock.sleeps == [7.0]
    assert len(script.requests) == 2


@async_test
async def test_retry_after_http_date_is_honoured():
    clock = Clock(now=1_700_000_000.0)
    when = email.utils.formatdate(clock.now + 12, usegmt=True)
    script = Script(respond(503, error_json("SERVICE_UNAVAILABLE"), **{"Retry-After": when}),
                    respond(204))
    service, _ = make_service(script.transport, clock=clock)

    await service.delete_session("golden-eagle-427")

    assert clock.sleeps == [12.0]


@async_test
async def test_429_exhausting_retries_is_rate_limited():
    script = Script(*[respond(429, {"message": "Too Many Requests"}, **{"Retry-After": "1"})] * 4)
    service, clock = make_service(script.transport)

    with pytest.raises(RateLimited) as caught:
        await service.get_session("golden-eagle-427")

    assert isinstance(caught.value, ServiceUnavailable)
    assert (len(script.requests), clock.sleeps, caught.value.retry_after) == (4, [1.0, 1.0, 1.0], 1.0)


@async_test
async def test_a_retry_after_beyond_the_limit_is_raised_not_slept_through():
    script = Script(respond(503, error_json("SERVICE_UNAVAILABLE"), **{"Retry-After": "3600"}))
    service, clock = make_service(script.transport)

    with pytest.raises(ServiceUnavailable) as caught:
        await service.get_session("golden-eagle-427")

    assert caught.value.retry_after == 3600.0
    assert (len(script.requests), clock.sleeps) == (1, [])


@pytest.mark.parametrize(("status", "code", "error_type"), [
    (400, "VALIDATION_ERROR", ValidationFailed),
    (400, "INVALID_SESSION_ID", ValidationFailed),
    (403, "FORBIDDEN", Forbidden),
    (404, "SESSION_NOT_FOUND", NotFound),
    (409, "SESSION_ENDED", SessionEnded),
    (409, "VERSION_CONFLICT", VersionConflict),
    (413, "BODY_TOO_LARGE", SessionApiError),
])
@async_test
async def test_client_errors_are_never_retried(status, code, error_type):
    script = Script(respond(status, error_json(code, "Human readable.", "req-42")))
    service, clock = make_service(script.transport)

    with pytest.raises(error_type) as caught:
        await service.update_session("golden-eagle-427", status="active")

    error = caught.value
    assert (len(script.requests), clock.sleeps) == (1, [])
    assert (error.status, error.code, error.message, error.request_id) == (status, code, "Human readable.", "req-42")
    assert str(error) == f"Human readable. (HTTP {status} {code}, request ID req-42)"


@async_test
async def test_network_errors_are_retried():
    script = Script(httpx.ReadTimeout("timed out"), offline(), respond(200, session_json()))
    service, clock = make_service(script.transport)

    assert (await service.get_session("golden-eagle-427")).session_id == "golden-eagle-427"
    assert len(script.requests) == 3
    assert clock.sleeps == [0.5, 1.0]


@async_test
async def test_a_network_error_that_persists_is_raised_after_three_retries():
    script = Script(*[httpx.ReadError("connection reset")] * 4)
    service, clock = make_service(script.transport)

    with pytest.raises(NetworkUnavailable) as caught:
        await service.delete_session("golden-eagle-427")

    # The server was reached (the read failed), so the outcome is unknown: raised, not queued.
    assert not isinstance(caught.value, OperationQueued)
    assert (len(script.requests), len(clock.sleeps), service.pending) == (4, 3, ())


# --------------------------------------------------------------------- tokens


@async_test
async def test_token_is_refreshed_shortly_before_it_expires():
    clock = Clock()
    tokens = FakeTokens(jwt(exp=clock.now + 30, tag="old"), jwt(exp=clock.now + 3600, tag="new"))
    script = Script(respond(200, session_json()))
    service, _ = make_service(script.transport, tokens=tokens, clock=clock)

    await service.get_session("golden-eagle-427")

    assert tokens.refreshes == 1
    assert script.requests[0].headers["Authorization"] == f"Bearer {tokens.tokens[1]}"


@async_test
async def test_token_is_reused_until_it_nears_expiry():
    clock = Clock()
    tokens = FakeTokens(jwt(exp=clock.now + 3600, tag="first"), jwt(exp=clock.now + 7200, tag="second"))
    script = Script(*[respond(200, session_json())] * 3)
    service, _ = make_service(script.transport, tokens=tokens, clock=clock)

    await service.get_session("golden-eagle-427")
    clock.now += 3600 - 61  # 61 s left: still fresh
    await service.get_session("golden-eagle-427")
    assert tokens.refreshes == 0
    clock.now += 2  # 59 s left: within the refresh margin
    await service.get_session("golden-eagle-427")

    assert tokens.refreshes == 1
    assert [r.headers["Authorization"][7:] for r in script.requests] == [tokens.tokens[0]] * 2 + [tokens.tokens[1]]


@async_test
async def test_a_401_refreshes_the_token_once_and_retries():
    tokens = FakeTokens("token-a", "token-b")
    script = Script(respond(401, {"message": "Unauthorized"}), respond(200, session_json()))
    service, clock = make_service(script.transport, tokens=tokens)

    await service.get_session("golden-eagle-427")

    assert tokens.refreshes == 1
    assert [r.headers["Authorization"] for r in script.requests] == ["Bearer token-a", "Bearer token-b"]
    assert clock.sleeps == []


@async_test
async def test_a_second_401_is_raised():
    tokens = FakeTokens("token-a", "token-b")
    script = Script(respond(401, {"message": "Unauthorized"}), respond(401, {"message": "Unauthorized"}))
    service, _ = make_service(script.transport, tokens=tokens)

    with pytest.raises(Unauthorized) as caught:
        await service.get_session("golden-eagle-427")

    assert (len(script.requests), tokens.refreshes) == (2, 1)
    assert caught.value.code == "UNAUTHORIZED"
    assert "expired" in caught.value.message  # API Gateway's bare "Unauthorized" is explained


@async_test
async def test_a_static_token_is_not_retried_after_401():
    script = Script(respond(401, {"message": "Unauthorized"}))
    service, _ = make_service(script.transport, tokens=StaticTokenProvider("fixed"))

    with pytest.raises(Unauthorized):
        await service.get_session("golden-eagle-427")
    assert len(script.requests) == 1


# ---------------------------------------------------------------- offline queue


@async_test
async def test_an_unreachable_create_is_queued_and_replayed_with_the_same_idempotency_key():
    api = FakeApi()
    service, clock = make_service(httpx.MockTransport(api))
    api.online = False

    with pytest.raises(OperationQueued) as caught:
        await service.create_session("en")

    operation = caught.value.operation
    assert api.attempts == 4 and len(clock.sleeps) == 3  # retried first, like any network error
    assert service.pending == (operation,) and not operation.done
    assert isinstance(caught.value.__cause__, httpx.ConnectError)

    api.online = True
    assert await service.flush() == [operation]

    session = await operation.wait()
    assert session.session_id == "quiet-river-000"
    assert api.calls() == ["POST /dev/sessions"]
    assert api.received[0].headers["Idempotency-Key"] == operation.idempotency_key
    assert service.pending == ()


@async_test
async def test_retries_and_replays_of_a_create_never_create_twice():
    """An answer lost after the server created the session is retried with the
    same key, and so is the replay of a queued create."""
    api = FakeApi()

    def created_then_answer_lost(request: httpx.Request) -> httpx.Response:
        api(request)
        raise httpx.ReadError("connection reset by peer")

    script = Script(created_then_answer_lost, api,  # a retried create
                    *[offline()] * 4,  # a queued create...
                    created_then_answer_lost, api)  # ...replayed, with a lost answer too
    service, _ = make_service(script.transport)

    first = await service.create_session("en")
    with pytest.raises(OperationQueued) as caught:
        await service.create_session("en")
    await service.flush()
    second = await caught.value.operation.wait()

    keys = [r.headers["Idempotency-Key"] for r in script.requests]
    assert keys[:2] == [keys[0]] * 2 and keys[2:] == [keys[2]] * 6 and keys[0] != keys[2]
    assert api.calls() == ["POST /dev/sessions"] * 4
    assert (first.session_id, second.session_id) == ("quiet-river-000", "quiet-river-001")  # two, not four


@async_test
async def test_the_queue_is_bounded():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api), max_queued=2)
    api.online = False

    for session_id in ("one-aa-001", "two-bb-002"):
        with pytest.raises(OperationQueued):
            await service.delete_session(session_id)
    with pytest.raises(QueueFull, match="not queued"):
        await service.delete_session("three-cc-003")

    assert [op.description for op in service.pending] == ["end session one-aa-001", "end session two-bb-002"]


@async_test
async def test_a_disabled_queue_raises_network_unavailable():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api), max_queued=0)
    api.online = False

    with pytest.raises(NetworkUnavailable) as caught:
        await service.delete_session("golden-eagle-427")
    assert not isinstance(caught.value, (OperationQueued, QueueFull))
    assert "unreachable" in str(caught.value)


@async_test
async def test_queued_operations_replay_in_order_on_flush():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api))
    api.online = False
    operations = []
    for call in (service.update_session("golden-eagle-427", status="paused"),
                 service.delete_session("silver-fox-001"),
                 service.create_session("de")):
        with pytest.raises(OperationQueued) as caught:
            await call
        operations.append(caught.value.operation)

    api.online = True
    assert await service.flush() == operations

    assert api.calls() == ["PATCH /dev/sessions/golden-eagle-427", "DELETE /dev/sessions/silver-fox-001",
                           "POST /dev/sessions"]
    assert (await operations[0].wait()).status == "paused"
    assert await operations[1].wait() is None
    assert (await operations[2].wait()).session_id == "quiet-river-000"


@async_test
async def test_flush_while_still_offline_keeps_the_queue():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api))
    api.online = False
    with pytest.raises(OperationQueued):
        await service.delete_session("golden-eagle-427")

    assert await service.flush() == []
    assert len(service.pending) == 1


@async_test
async def test_the_next_call_replays_the_queue_first():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api))
    api.online = False
    with pytest.raises(OperationQueued) as caught:
        await service.delete_session("golden-eagle-427")

    api.online = True
    await service.get_session("silver-fox-001")

    assert api.calls() == ["DELETE /dev/sessions/golden-eagle-427", "GET /dev/sessions/silver-fox-001"]
    assert caught.value.operation.done and service.pending == ()


@async_test
async def test_while_offline_a_new_write_queues_behind_the_waiting_ones():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api))
    api.online = False
    with pytest.raises(OperationQueued):
        await service.update_session("golden-eagle-427", status="paused")
    with pytest.raises(OperationQueued):
        await service.update_session("golden-eagle-427", status="active")

    api.online = True
    await service.flush()

    assert [json.loads(r.content)["status"] for r in api.received] == ["paused", "active"]


@async_test
async def test_reads_are_not_queued_while_offline():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api))
    api.online = False

    with pytest.raises(NetworkUnavailable) as caught:
        await service.get_session("golden-eagle-427")

    assert not isinstance(caught.value, OperationQueued)
    assert service.pending == ()
    assert "unreachable" in str(caught.value)


@async_test
async def test_a_replayed_operation_that_fails_gets_its_error_and_the_replay_goes_on():
    script = Script(*[offline()] * 4,  # update: queued
                    *[offline()] * 4,  # replay attempt before the delete: still offline, delete queued
                    respond(409, error_json("SESSION_ENDED", "ended", "req-7")), respond(204))
    service, _ = make_service(script.transport)
    with pytest.raises(OperationQueued) as update:
        await service.update_session("golden-eagle-427", status="active")
    with pytest.raises(OperationQueued) as delete:
        await service.delete_session("silver-fox-001")

    completed = await service.flush()

    assert completed == [update.value.operation, delete.value.operation]
    with pytest.raises(SessionEnded):
        await update.value.operation.wait()
    assert await delete.value.operation.wait() is None


@async_test
async def test_a_cancelled_operation_is_not_replayed():
    api = FakeApi()
    service, _ = make_service(httpx.MockTransport(api))
    api.online = False
    with pytest.raises(OperationQueued) as caught:
        await service.delete_session("golden-eagle-427")

    assert caught.value.operation.cancel() is True
    assert caught.value.operation.cancel() is False
    api.online = True
    await service.flush()

    assert api.received == []


@async_test
async def test_cognito_being_unreachable_counts_as_offline():
    class Unreachable:
        async def token(self) -> str:
            raise NetworkUnavailable("Cannot reach Cognito")

        async def refresh(self) -> str:
            raise NetworkUnavailable("Cannot reach Cognito")

    script = Script()
    service, _ = make_service(script.transport, tokens=Unreachable())

    with pytest.raises(OperationQueued):
        await service.delete_session("golden-eagle-427")
    assert script.requests == []


# --------------------------------------------------------------- error bodies


@async_test
async def test_gateway_bodies_and_request_id_header_are_typed():
    script = Script(respond(503, {"message": "Service Unavailable"}, **{"apigw-requestid": "gw-1"}),
                    respond(404, error_json("SESSION_NOT_FOUND", "No session with this ID exists.", "req-5")),
                    httpx.Response(502, text="<html>Bad Gateway</html>"))
    service, _ = make_service(script.transport, retry=RetryPolicy(max_retries=0))

    with pytest.raises(ServiceUnavailable) as unavailable:
        await service.get_session("golden-eagle-427")
    with pytest.raises(NotFound) as missing:
        await service.get_session("golden-eagle-427")
    with pytest.raises(ServiceUnavailable) as bad_gateway:
        await service.get_session("golden-eagle-427")

    assert (unavailable.value.code, unavailable.value.message, unavailable.value.request_id) == (
        "HTTP_503", "Service Unavailable", "gw-1")
    assert isinstance(missing.value, SessionApiError) and not isinstance(missing.value, Conflict)
    assert str(missing.value) == "No session with this ID exists. (HTTP 404 SESSION_NOT_FOUND, request ID req-5)"
    assert (bad_gateway.value.status, bad_gateway.value.code) == (502, "HTTP_502")


@async_test
async def test_a_success_without_a_session_body_is_an_error():
    script = Script(respond(200, {"unexpected": True}))
    service, _ = make_service(script.transport)

    with pytest.raises(SessionApiError) as caught:
        await service.get_session("golden-eagle-427")
    assert caught.value.code == "INVALID_RESPONSE"


@async_test
async def test_create_session_sends_the_access_and_reads_the_join_key_back():
    key = "k" * 32
    script = Script(respond(201, session_json(access="link", joinKey=key)),
                    respond(201, session_json(access="public")), respond(201, session_json()))
    service, _ = make_service(script.transport)

    link = await service.create_session("en")
    public = await service.create_session("en", access="public")
    older = await service.create_session("en")  # from a server that predates access

    assert "access" not in json.loads(script.requests[0].content)  # the service's default: link
    assert json.loads(script.requests[1].content)["access"] == "public"
    assert (link.access, link.join_key) == ("link", key) and link.to_json()["joinKey"] == key
    assert (public.access, public.join_key) == ("public", None) and "joinKey" not in public.to_json()
    assert (older.access, older.join_key) == (None, None)


@async_test
async def test_the_session_limit_is_not_retried():
    script = Script(respond(429, error_json("SESSION_LIMIT_REACHED", "You hold 3 live sessions")))
    service, clock = make_service(script.transport)

    with pytest.raises(SessionLimitReached) as caught:
        await service.create_session("en")

    assert not isinstance(caught.value, ServiceUnavailable)
    assert (caught.value.status, caught.value.code) == (429, "SESSION_LIMIT_REACHED")
    assert (len(script.requests), clock.sleeps) == (1, [])
