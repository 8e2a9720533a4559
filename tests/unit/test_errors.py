"""One table of messages: every error code has one, and a refusal's code is its reason, not its message."""

from __future__ import annotations

import pytest
from session_core import errors
from session_core.usecases import admission


def every_error_class(base: type = errors.ServiceError) -> list[type]:
    found = []
    for cls in base.__subclasses__():
        found += [cls, *every_error_class(cls)]
    return found


def test_every_error_code_has_its_own_message():
    classes = every_error_class()
    assert admission.Refused in classes and errors.NotSessionOwner in classes
    wrong = {cls.__name__: cls.code for cls in classes
             if not cls.__name__.startswith("_") and cls.default_message != errors.MESSAGES.get(cls.code)}
    assert not wrong, f"codes without a message of their own in errors.MESSAGES: {wrong}"


def test_a_code_without_a_message_fails_where_it_is_defined():
    with pytest.raises(KeyError, match="NO_SUCH_CODE"):
        type("Undocumented", (errors.ServiceError,), {}, code="NO_SUCH_CODE")


@pytest.mark.parametrize(("query", "legacy", "reason"), [
    ({"role": "speaker"}, "disabled", "LEGACY_CREATION_DISABLED"),
    ({"role": "listener", "sessionId": "golden-eagle-427", "targetLanguage": "xx"}, "enabled",
     "UNSUPPORTED_TARGET_LANGUAGE"),
    ({"role": "judge", "sessionId": "golden-eagle-427"}, "enabled", "INVALID_ROLE"),
])
def test_a_refused_handshake_carries_its_code_as_the_reason(monkeypatch, query, legacy, reason):
    monkeypatch.setenv("TABLE_NAME", "sessions")
    monkeypatch.setenv("LEGACY_WEBSOCKET_SESSION_CREATION", legacy)
    monkeypatch.setattr(admission, "user_of", lambda token: "alice")
    with pytest.raises(admission.Refused) as refused:
        admission.admit({**query, "token": "a token"})
    assert refused.value.reason == reason
    assert refused.value.message == errors.MESSAGES["CONNECTION_REFUSED"]
    assert (refused.value.status, refused.value.code) == (403, "CONNECTION_REFUSED")
