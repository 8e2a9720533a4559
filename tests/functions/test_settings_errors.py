"""A function whose environment is broken answers as for any fault of its own (500, nothing internal shown) and
logs the variable to fix."""

from __future__ import annotations

import json

import pytest
from session_core.platform import settings as settings_module

from tests.support.lambdas import http_event, ws_event


@pytest.fixture
def broken(monkeypatch, table):
    """broken(name, value): the functions' environment with that variable malformed, settings read afresh."""
    def set_(name: str, value: str | None) -> None:
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
        settings_module.settings.cache_clear()
    yield set_
    monkeypatch.undo()
    settings_module.settings.cache_clear()




def test_a_missing_table_name_is_a_500_and_the_log_names_it(invoke, broken, log_lines):
    broken("TABLE_NAME", None)
    status, _, body = invoke("get_session", http_event("get_session", session_id="golden-eagle-427"))
    assert (status, body["error"]["code"]) == (500, "INTERNAL_ERROR")
    assert "TABLE_NAME" not in json.dumps(body)
    assert any("TABLE_NAME is not set" in line.get("exception", "") for line in log_lines())


def test_a_malformed_setting_fails_a_handshake_with_500_and_the_log_names_it(invoke, broken, log_lines):
    broken("MAX_LISTENERS_PER_SESSION", "many")
    who = {"sessionId": "golden-eagle-427", "role": "listener", "userId": "", "targetLanguage": "", "legacy": False}
    result = invoke.raw("ws_connect", ws_event("ws_connect", connection_id="broken-settings=", who=who))
    assert result == {"statusCode": 500}  # a service fault, retried by clients; not a 403 refusal
    assert any("MAX_LISTENERS_PER_SESSION must be a whole number of at least 1" in line.get("exception", "")
               for line in log_lines())
