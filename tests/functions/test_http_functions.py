"""Each HTTP function invoked with its sample event against a real (moto) table."""

import uuid

import pytest

from session_core import session_ids
from tests.support.lambdas import http_event, sample_event

ALICE, BOB = "alice-sub", "bob-sub"


def create(invoke, sub=ALICE, **body):
    status, headers, session = invoke("create_session", http_event(
        "create_session", sub=sub, body={"sourceLanguage": "en", "qualityTier": "standard", **body}))
    assert status == 201, session
    return session


def error_of(result):
    status, _, body = result
    return status, body["error"]["code"]


@pytest.mark.parametrize("name", ["create_session", "get_session", "update_session", "delete_session"])
def test_every_sample_event_is_accepted(invoke, name):
    if name != "create_session":
        # The sample events name golden-eagle-427; make sure it exists and is the sample caller's.
        sub = sample_event(name)["requestContext"]["authorizer"]["jwt"]["claims"]["sub"]
        session = create(invoke, sub=sub)
        event = http_event(name, session_id=session["sessionId"], sub=sub)
    else:
        event = sample_event(name)
    status, _, _ = invoke(name, event)
    assert status in (200, 201, 204)


def test_create_returns_the_session_and_its_location(invoke):
    status, headers, body = invoke("create_session", http_event(
        "create_session", sub=ALICE, body={"sourceLanguage": "fr", "qualityTier": "premium"}))
    assert status == 201
    assert session_ids.is_valid_session_id(body["sessionId"])
    assert headers["location"] == f"/dev/sessions/{body['sessionId']}"
    assert body["speakerId"] == ALICE and body["status"] == "active" and body["listenerCount"] == 0
    assert (body["sourceLanguage"], body["qualityTier"], body["version"]) == ("fr", "premium", 1)
    assert body["createdAt"] == body["updatedAt"] and body["expiresAt"] > body["createdAt"]


def test_quality_tier_defaults_to_standard(invoke):
    _, _, body = invoke("create_session", http_event("create_session", body={"sourceLanguage": "de"}))
    assert body["qualityTier"] == "standard"


def test_the_partial_results_settings_default_and_are_kept_as_given(invoke):
    defaults = create(invoke)
    assert (defaults["partialResultsEnabled"], defaults["minStabilityThreshold"], defaults["maxBufferTimeout"]) == (
        True, 0.85, 5.0)
    given = create(invoke, partialResultsEnabled=False, minStabilityThreshold=0.95, maxBufferTimeout=2)
    _, _, body = invoke("get_session", http_event("get_session", session_id=given["sessionId"], sub=BOB))
    assert (body["partialResultsEnabled"], body["minStabilityThreshold"], body["maxBufferTimeout"]) == (
        False, 0.95, 2.0)


def test_get_round_trips_what_create_wrote(invoke):
    session = create(invoke)
    status, _, body = invoke("get_session", http_event("get_session", session_id=session["sessionId"], sub=ALICE))
    assert status == 200 and body == session
    # Anyone else reads it without its join key.
    status, _, body = invoke("get_session", http_event("get_session", session_id=session["sessionId"], sub=BOB))
    assert status == 200 and body == {k: v for k, v in session.items() if k != "joinKey"}


def test_patch_changes_status_and_settings_and_bumps_version(invoke):
    sid = create(invoke)["sessionId"]
    status, _, body = invoke("update_session", http_event(
        "update_session", session_id=sid, body={"status": "paused", "qualityTier": "premium"}, sub=ALICE))
    assert status == 200
    assert (body["status"], body["qualityTier"], body["version"]) == ("paused", "premium", 2)
    _, _, body = invoke("update_session", http_event("update_session", session_id=sid, body={"status": "active"},
                                                     sub=ALICE))
    assert (body["status"], body["version"]) == ("active", 3)


def test_patch_with_if_match(invoke):
    sid = create(invoke)["sessionId"]
    ok = invoke("update_session", http_event("update_session", session_id=sid, body={"sourceLanguage": "es"},
                                             headers={"if-match": '"1"'}, sub=ALICE))
    assert ok[0] == 200 and ok[2]["version"] == 2
    stale = invoke("update_session", http_event("update_session", session_id=sid, body={"sourceLanguage": "it"},
                                                headers={"if-match": "1"}, sub=ALICE))
    assert error_of(stale) == (409, "VERSION_CONFLICT")
    bad = invoke("update_session", http_event("update_session", session_id=sid, body={"sourceLanguage": "it"},
                                              headers={"if-match": "abc"}, sub=ALICE))
    assert error_of(bad) == (400, "VALIDATION_ERROR")


def test_only_the_owner_may_patch_or_delete(invoke):
    sid = create(invoke)["sessionId"]
    assert error_of(invoke("update_session", http_event("update_session", session_id=sid,
                                                        body={"status": "paused"}, sub=BOB))) == (403, "FORBIDDEN")
    assert error_of(invoke("delete_session", http_event("delete_session", session_id=sid, sub=BOB))) == (
        403, "FORBIDDEN")
    _, _, body = invoke("get_session", http_event("get_session", session_id=sid))
    assert body["status"] == "active" and body["version"] == 1


def test_delete_ends_the_session_and_is_idempotent(invoke):
    sid = create(invoke)["sessionId"]
    assert invoke("delete_session", http_event("delete_session", session_id=sid, sub=ALICE))[0] == 204
    assert invoke("delete_session", http_event("delete_session", session_id=sid, sub=ALICE))[0] == 204
    _, _, body = invoke("get_session", http_event("get_session", session_id=sid))
    assert body["status"] == "ended" and body["endedAt"] >= body["createdAt"] and body["version"] == 2


def test_ended_is_final(invoke):
    sid = create(invoke)["sessionId"]
    _, _, ended = invoke("update_session", http_event("update_session", session_id=sid, body={"status": "ended"},
                                                      sub=ALICE))
    assert ended["status"] == "ended" and "endedAt" in ended
    for change in ({"status": "active"}, {"status": "ended"}, {"qualityTier": "premium"}):
        assert error_of(invoke("update_session", http_event("update_session", session_id=sid, body=change,
                                                            sub=ALICE))) == (409, "SESSION_ENDED")


@pytest.mark.parametrize("name", ["get_session", "update_session", "delete_session"])
def test_missing_session_is_404(invoke, name):
    result = invoke(name, http_event(name, session_id="quiet-otter-999", body={"status": "paused"}))
    assert error_of(result) == (404, "SESSION_NOT_FOUND")
    assert result[2]["error"]["requestId"].startswith("req-")


def test_expired_session_is_404_even_before_ttl_removes_it(invoke, monkeypatch):
    sid = create(invoke)["sessionId"]
    import session_core.usecases.sessions as sessions
    real_now = sessions._now
    monkeypatch.setattr(sessions, "_now", lambda: real_now() + 10 * 24 * 3600)
    for name in ("get_session", "update_session", "delete_session"):
        assert error_of(invoke(name, http_event(name, session_id=sid, body={"status": "paused"}))) == (
            404, "SESSION_NOT_FOUND")


@pytest.mark.parametrize("name", ["get_session", "update_session", "delete_session"])
@pytest.mark.parametrize("bad_id", ["GOLDEN-EAGLE-427", "golden-eagle", "golden-eagle-4271", "x" * 200, "a%20b"])
def test_malformed_session_id_is_400(invoke, name, bad_id):
    result = invoke(name, http_event(name, session_id=bad_id, body={"status": "paused"}))
    assert error_of(result) == (400, "INVALID_SESSION_ID")


BAD_BODIES = [
    ("{not json", "INVALID_JSON"),
    ("", "INVALID_JSON"),
    ("[1, 2]", "VALIDATION_ERROR"),
    ('"text"', "VALIDATION_ERROR"),
    ("null", "VALIDATION_ERROR"),
    ('{"sourceLanguage": 5}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "xx"}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "qualityTier": "ultra"}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "listenerCount": 7}', "VALIDATION_ERROR"),
    ('{"qualityTier": "standard"}', "VALIDATION_ERROR"),
    # The partial-results settings: in range, and of their JSON type (the old clients' "true" is theirs only).
    ('{"sourceLanguage": "en", "minStabilityThreshold": 0.69}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "minStabilityThreshold": 0.96}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "minStabilityThreshold": "0.8"}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "maxBufferTimeout": 1.5}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "maxBufferTimeout": 10.5}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "maxBufferTimeout": null}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "partialResultsEnabled": "true"}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "partialResults": true}', "VALIDATION_ERROR"),
    ('{"sourceLanguage": "en", "pad": "' + "x" * 17000 + '"}', "BODY_TOO_LARGE"),
]


@pytest.mark.parametrize(("raw", "code"), BAD_BODIES)
def test_bad_create_bodies_are_400_and_write_nothing(invoke, raw, code):
    status, _, body = invoke("create_session", http_event("create_session", raw_body=raw))
    assert (status, body["error"]["code"]) == (400, code)
    assert set(body["error"]) == {"code", "message", "requestId"}
    assert "Traceback" not in body["error"]["message"] and "sessions-test" not in body["error"]["message"]


@pytest.mark.parametrize(("raw", "code"), [
    ("{}", "VALIDATION_ERROR"),
    ('{"status": null}', "VALIDATION_ERROR"),
    ('{"status": "deleted"}', "VALIDATION_ERROR"),
    ('{"speakerId": "bob-sub"}', "VALIDATION_ERROR"),
    ('{"status": "paused", "version": 9}', "VALIDATION_ERROR"),
    ('{"minStabilityThreshold": 0.9}', "VALIDATION_ERROR"),  # fixed at creation
    ("[]", "VALIDATION_ERROR"),
    ("{", "INVALID_JSON"),
])
def test_bad_patch_bodies_are_400_and_change_nothing(invoke, raw, code):
    sid = create(invoke)["sessionId"]
    status, _, body = invoke("update_session", http_event("update_session", session_id=sid, raw_body=raw,
                                                          sub=ALICE))
    assert (status, body["error"]["code"]) == (400, code)
    _, _, session = invoke("get_session", http_event("get_session", session_id=sid))
    assert session["version"] == 1 and session["status"] == "active"


def test_base64_encoded_bodies_are_decoded(invoke):
    import base64
    event = http_event("create_session", raw_body=base64.b64encode(b'{"sourceLanguage": "ja"}').decode())
    event["isBase64Encoded"] = True
    status, _, body = invoke("create_session", event)
    assert status == 201 and body["sourceLanguage"] == "ja"


@pytest.mark.parametrize("name", ["create_session", "update_session", "delete_session"])
def test_requests_without_verified_claims_are_refused(invoke, name):
    session_id = None if name == "create_session" else "calm-river-427"
    body = {"sourceLanguage": "en"} if name == "create_session" else {"status": "paused"}
    status, _, body = invoke(name, http_event(name, session_id=session_id, body=body, sub=None))
    assert status == 401 and body == {"message": "Unauthorized"}


def _create_with_key(invoke, key, sub=ALICE, body=None):
    return invoke("create_session", http_event("create_session", sub=sub, headers={"idempotency-key": key},
                                               body=body or {"sourceLanguage": "en"}))


def test_a_repeated_create_with_the_same_idempotency_key_returns_the_first_session(invoke):
    key = f"key-{uuid.uuid4()}"
    first = _create_with_key(invoke, key)
    again = _create_with_key(invoke, key)
    assert first[0] == again[0] == 201
    assert again[2] == first[2] and again[1]["location"] == first[1]["location"]
    other = _create_with_key(invoke, f"key-{uuid.uuid4()}")
    assert other[2]["sessionId"] != first[2]["sessionId"]


def test_idempotency_keys_are_scoped_to_the_caller(invoke):
    key = f"key-{uuid.uuid4()}"
    alice, bob = _create_with_key(invoke, key, sub=ALICE), _create_with_key(invoke, key, sub=BOB)
    assert alice[2]["sessionId"] != bob[2]["sessionId"] and bob[2]["speakerId"] == BOB


def test_reusing_an_idempotency_key_for_another_body_is_refused(invoke):
    key = f"key-{uuid.uuid4()}"
    _create_with_key(invoke, key)
    assert error_of(_create_with_key(invoke, key, body={"sourceLanguage": "fr"})) == (409, "IDEMPOTENCY_KEY_REUSED")


@pytest.mark.parametrize("key", ["short", "has spaces in it", "x" * 129, "emoji-\u2603-key"])
def test_malformed_idempotency_keys_are_400(invoke, key):
    assert error_of(_create_with_key(invoke, key)) == (400, "VALIDATION_ERROR")


# The router (session_core/api/router.py) matches as API Gateway's own resolver did: the method and the path
# without its stage, a parameter being one path segment; anything else is the route-not-found error.
@pytest.mark.parametrize("change", ["another path", "a nested path", "another method", "a trailing slash"])
def test_a_request_no_route_matches_is_route_not_found(invoke, change):
    event = http_event("get_session", sub=ALICE)
    if change == "another method":
        event["requestContext"]["http"]["method"] = "POST"
    else:
        event["rawPath"] = {"another path": "/dev/session/golden-eagle-427",
                            "a nested path": "/dev/sessions/golden-eagle-427/extra",
                            "a trailing slash": "/dev/sessions/golden-eagle-427/"}[change]
    status, headers, body = invoke("get_session", event)
    assert (status, body["error"]["code"]) == (404, "ROUTE_NOT_FOUND")
    assert body["error"]["requestId"] == event["requestContext"]["requestId"]
    assert headers["content-type"] == "application/json"


def test_the_default_stage_has_no_prefix_in_the_path(invoke):
    session = create(invoke)
    event = http_event("get_session", session_id=session["sessionId"], sub=ALICE)
    event["requestContext"]["stage"] = "$default"
    event["rawPath"] = f"/sessions/{session['sessionId']}"
    status, _, body = invoke("get_session", event)
    assert status == 200 and body["sessionId"] == session["sessionId"]
