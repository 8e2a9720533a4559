"""Under the SAM CLI (AWS_SAM_LOCAL=true) no JWT authorizer runs: the HTTP
functions verify the bearer token themselves; anywhere else they never do."""

import pytest

from session_core.platform import auth, settings
from tests.support import tokens
from tests.support.lambdas import http_event


@pytest.fixture
def sam_local(monkeypatch):
    monkeypatch.setenv("AWS_SAM_LOCAL", "true")
    settings.settings.cache_clear()
    auth.configured_verifier.cache_clear()
    yield
    settings.settings.cache_clear()
    auth.configured_verifier.cache_clear()


def unverified(name, token=None, session_id=None, body=None):
    event = http_event(name, session_id=session_id, body=body, sub=None)
    event["headers"]["authorization"] = f"Bearer {token}" if token else ""
    return event


@pytest.mark.parametrize("token_type", ["IdToken", "AccessToken"])
def test_a_valid_token_is_verified_by_the_function_itself(invoke, cognito, sam_local, token_type):
    token = cognito["tokens"]["alice"][token_type]
    status, _, session = invoke("create_session", unverified("create_session", token, body={"sourceLanguage": "en"}))
    assert status == 201
    import jwt
    assert session["speakerId"] == jwt.decode(token, options={"verify_signature": False})["sub"]
    # ...and ownership still holds: bob may not end alice's session.
    bob = cognito["tokens"]["bob"][token_type]
    status, _, body = invoke("delete_session", unverified("delete_session", bob, session_id=session["sessionId"]))
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    assert invoke("delete_session", unverified("delete_session", token, session_id=session["sessionId"]))[0] == 204


@pytest.mark.parametrize("token", [None, "garbage", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0."])
def test_a_missing_or_bad_token_is_401_under_sam_local(invoke, sam_local, token):
    status, _, body = invoke("create_session", unverified("create_session", token, body={"sourceLanguage": "en"}))
    assert status == 401 and body == {"message": "Unauthorized"}


def test_outside_sam_local_a_token_without_gateway_claims_is_never_trusted(invoke, cognito, monkeypatch):
    monkeypatch.delenv("AWS_SAM_LOCAL", raising=False)
    token = cognito["tokens"]["alice"]["IdToken"]
    status, _, body = invoke("create_session", unverified("create_session", token, body={"sourceLanguage": "en"}))
    assert status == 401 and body == {"message": "Unauthorized"}


@pytest.mark.parametrize("failure", tokens.JWKS_FAILURES)
def test_a_jwks_failure_under_sam_local_is_503_not_401(invoke, cognito, sam_local, monkeypatch, failure):
    # The token is fine; the caller is told to retry (503), never that its token is bad (401).
    with tokens.failing_jwks(failure) as url:
        monkeypatch.setenv("JWKS_URL", url)
        settings.settings.cache_clear()
        auth.configured_verifier.cache_clear()
        token = cognito["tokens"]["alice"]["IdToken"]
        status, _, body = invoke("create_session", unverified("create_session", token, body={"sourceLanguage": "en"}))
    assert (status, body["error"]["code"]) == (503, "SERVICE_UNAVAILABLE"), body
