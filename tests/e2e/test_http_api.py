"""The HTTP session API end to end: real HTTP to the local stack, real Cognito
tokens, the real handlers and table. Every status and error code of the contract."""

import uuid

import httpx
import pytest

from session_core.session_ids import is_valid_session_id


@pytest.fixture(scope="module")
def api(stack):
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        yield client


def create(api, stack, user="alice", access=False, **body):
    r = api.post("/sessions", headers=stack.auth(user, access=access), json={"sourceLanguage": "en", **body})
    assert r.status_code == 201, r.text
    return r


def error(r):
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "requestId"}, body
    assert body["error"]["requestId"] == r.headers["apigw-requestid"]
    return r.status_code, body["error"]["code"]


@pytest.mark.parametrize("access", [False, True], ids=["id-token", "access-token"])
def test_the_full_lifecycle_with_either_token_type(api, stack, access):
    auth = stack.auth("alice", access=access)
    r = create(api, stack, access=access, qualityTier="premium")
    session = r.json()
    assert is_valid_session_id(session["sessionId"])
    assert r.headers["location"] == f"/{stack['stage']}/sessions/{session['sessionId']}"
    assert (session["status"], session["listenerCount"], session["qualityTier"]) == ("active", 0, "premium")
    assert isinstance(session["createdAt"], int) and session["expiresAt"] > session["createdAt"]
    path = f"/sessions/{session['sessionId']}"

    # Anyone signed in may read; only the owner is shown the join key (a link session's).
    assert api.get(path, headers=stack.auth("bob")).json() == {k: v for k, v in session.items() if k != "joinKey"}
    patched = api.patch(path, headers=auth, json={"status": "paused", "sourceLanguage": "fr"})
    assert patched.status_code == 200
    assert (patched.json()["status"], patched.json()["sourceLanguage"], patched.json()["version"]) == ("paused", "fr", 2)
    assert api.patch(path, headers=auth, json={"status": "active"}).json()["status"] == "active"

    assert api.delete(path, headers=auth).status_code == 204
    assert api.delete(path, headers=auth).status_code == 204  # repeated DELETE
    ended = api.get(path, headers=auth).json()
    assert ended["status"] == "ended" and ended["endedAt"] >= ended["createdAt"]


def test_speaker_id_is_the_callers_sub(api, stack):
    import jwt
    for user in ("alice", "bob"):
        session = create(api, stack, user).json()
        assert session["speakerId"] == jwt.decode(stack.token(user), options={"verify_signature": False})["sub"]


def test_only_the_owner_may_change_or_end_a_session(api, stack):
    session = create(api, stack, "alice").json()
    path = f"/sessions/{session['sessionId']}"
    for access in (False, True):
        assert error(api.patch(path, headers=stack.auth("bob", access=access), json={"status": "paused"})) == (
            403, "FORBIDDEN")
        assert error(api.delete(path, headers=stack.auth("bob", access=access))) == (403, "FORBIDDEN")
    assert api.get(path, headers=stack.auth()).json() == session


def test_missing_sessions_are_404(api, stack):
    for method in ("GET", "PATCH", "DELETE"):
        r = api.request(method, "/sessions/quiet-otter-999", headers=stack.auth(), json={"status": "paused"})
        assert error(r) == (404, "SESSION_NOT_FOUND")


@pytest.mark.parametrize("bad_id", ["UPPER-case-123", "no-number", "a-b-1234", "white%20space-x-123",
                                    "x" * 300])
def test_malformed_session_ids_are_400(api, stack, bad_id):
    for method in ("GET", "PATCH", "DELETE"):
        r = api.request(method, f"/sessions/{bad_id}", headers=stack.auth(), json={"status": "paused"})
        assert error(r) == (400, "INVALID_SESSION_ID")


def test_ended_is_final(api, stack):
    session = create(api, stack).json()
    path = f"/sessions/{session['sessionId']}"
    assert api.patch(path, headers=stack.auth(), json={"status": "ended"}).json()["status"] == "ended"
    for change in ({"status": "active"}, {"status": "paused"}, {"qualityTier": "premium"}):
        assert error(api.patch(path, headers=stack.auth(), json=change)) == (409, "SESSION_ENDED")


def test_if_match_guards_against_stale_writes(api, stack):
    session = create(api, stack).json()
    path = f"/sessions/{session['sessionId']}"
    ok = api.patch(path, headers={**stack.auth(), "If-Match": '"1"'}, json={"qualityTier": "premium"})
    assert ok.status_code == 200 and ok.json()["version"] == 2
    stale = api.patch(path, headers={**stack.auth(), "If-Match": '"1"'}, json={"qualityTier": "standard"})
    assert error(stale) == (409, "VERSION_CONFLICT")
    assert api.get(path, headers=stack.auth()).json()["qualityTier"] == "premium"


BAD_CREATES = [
    (b"{not json", "INVALID_JSON"),
    (b"", "INVALID_JSON"),
    (b"[]", "VALIDATION_ERROR"),
    (b'"en"', "VALIDATION_ERROR"),
    (b'{"sourceLanguage": 1}', "VALIDATION_ERROR"),
    (b'{"sourceLanguage": "klingon"}', "VALIDATION_ERROR"),
    (b'{"sourceLanguage": "en", "qualityTier": "gold"}', "VALIDATION_ERROR"),
    (b'{"sourceLanguage": "en", "speakerId": "someone-else"}', "VALIDATION_ERROR"),
    (b'{"sourceLanguage": "en", "x": "' + b"y" * 17_000 + b'"}', "BODY_TOO_LARGE"),
]


@pytest.mark.parametrize(("body", "code"), BAD_CREATES)
def test_bad_create_bodies_are_400_and_never_a_500(api, stack, body, code):
    r = api.post("/sessions", headers={**stack.auth(), "content-type": "application/json"}, content=body)
    assert error(r) == (400, code)
    assert "Traceback" not in r.text and stack["tableName"] not in r.text


@pytest.mark.parametrize(("body", "code"), [
    (b"{}", "VALIDATION_ERROR"),
    (b'{"status": "deleted"}', "VALIDATION_ERROR"),
    (b'{"status": null}', "VALIDATION_ERROR"),
    (b'{"listenerCount": 99}', "VALIDATION_ERROR"),
    (b"{", "INVALID_JSON"),
])
def test_bad_patch_bodies_are_400_and_change_nothing(api, stack, body, code):
    session = create(api, stack).json()
    path = f"/sessions/{session['sessionId']}"
    assert error(api.patch(path, headers=stack.auth(), content=body)) == (400, code)
    assert api.get(path, headers=stack.auth()).json() == session


def test_idempotency_key_makes_a_replayed_create_harmless(api, stack):
    headers = {**stack.auth(), "Idempotency-Key": f"replay-{uuid.uuid4()}"}
    first = api.post("/sessions", headers=headers, json={"sourceLanguage": "es"})
    second = api.post("/sessions", headers=headers, json={"sourceLanguage": "es"})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    reused = api.post("/sessions", headers=headers, json={"sourceLanguage": "de"})
    assert error(reused) == (409, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer a.b.c"},
    {"Authorization": "Basic YWxpY2U6cGFzcw=="},
])
def test_requests_without_a_valid_token_are_401_with_a_bare_body(api, stack, headers):
    for method, path in (("POST", "/sessions"), ("GET", "/sessions/calm-river-427"),
                         ("PATCH", "/sessions/calm-river-427"), ("DELETE", "/sessions/calm-river-427")):
        r = api.request(method, path, headers=headers, json={"sourceLanguage": "en"})
        assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}


def test_cors_preflight_and_response_headers(api, stack):
    preflight = api.options("/sessions", headers={"Origin": "https://app.example.com",
                                                  "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code in (200, 204)
    assert preflight.headers["access-control-allow-origin"] in ("*", "https://app.example.com")
    assert "post" in preflight.headers["access-control-allow-methods"].lower()
    r = api.post("/sessions", headers={**stack.auth(), "Origin": "https://app.example.com"},
                 json={"sourceLanguage": "en"})
    assert r.headers["access-control-allow-origin"] in ("*", "https://app.example.com")
    assert "location" in r.headers.get("access-control-expose-headers", "").lower()


@pytest.mark.local_only("reads the function's log file")
def test_every_request_is_logged_with_its_request_id_as_correlation_id(api, stack):
    r = create(api, stack)
    import json
    lines = [json.loads(line) for line in stack.log("CreateSessionFunction").splitlines() if line.startswith("{")]
    assert any(line.get("correlation_id") == r.headers["apigw-requestid"] for line in lines)
