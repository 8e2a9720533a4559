"""The functions' settings: read once from the environment, checked, with an error naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from session_core.platform import settings as settings_module
from session_core.platform.settings import SettingsError, settings

LAYER = Path(__file__).resolve().parents[2] / "layers" / "session_core" / "session_core"
VARIABLES = ("TABLE_NAME", "SESSION_TTL_HOURS", "STAGE_NAME", "MAX_LISTENERS_PER_SESSION", "MAX_AUDIO_BYTES",
             "PAUSE_BUFFER_SECONDS", "AUDIO_STREAM_NAME", "LEGACY_WEBSOCKET_SESSION_CREATION",
             "ALLOW_ANONYMOUS_LISTENERS", "JWT_ISSUER", "JWT_AUDIENCE", "JWKS_URL", "WEBSOCKET_MANAGEMENT_URL",
             "TEARDOWN_STATE_MACHINE_ARN", "AWS_SAM_LOCAL")


@pytest.fixture
def environment(monkeypatch):
    """A function's environment holding only what a test sets (settings read afresh)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TABLE_NAME", "sessions")
    settings.cache_clear()
    yield monkeypatch.setenv
    settings.cache_clear()


def test_only_the_table_name_is_needed_and_the_rest_has_defaults(environment):
    s = settings()
    assert (s.table_name, s.session_ttl_seconds, s.stage, s.max_listeners, s.max_audio_bytes) == (
        "sessions", 24 * 3600, "dev", 500, 1024 * 1024)
    assert (s.pause_buffer_seconds, s.legacy_creation_enabled, s.allow_anonymous_listeners, s.sam_local) == (
        30, True, True, False)
    assert (s.jwt_audiences, s.jwks_url, s.teardown_state_machine_arn) == ((), None, "")


def test_values_are_read_as_given(environment):
    for name, value in {"SESSION_TTL_HOURS": "2", "MAX_LISTENERS_PER_SESSION": "3", "PAUSE_BUFFER_SECONDS": "0",
                        "LEGACY_WEBSOCKET_SESSION_CREATION": "disabled", "ALLOW_ANONYMOUS_LISTENERS": "false",
                        "JWT_AUDIENCE": "a,b", "AWS_SAM_LOCAL": "true"}.items():
        environment(name, value)
    s = settings()
    assert (s.session_ttl_seconds, s.max_listeners, s.pause_buffer_seconds) == (7200, 3, 0)
    assert (s.legacy_creation_enabled, s.allow_anonymous_listeners, s.jwt_audiences, s.sam_local) == (
        False, False, ("a", "b"), True)


def test_settings_are_read_once(environment):
    first = settings()
    environment("MAX_LISTENERS_PER_SESSION", "7")
    assert settings() is first and settings().max_listeners == 500


def test_a_missing_table_name_is_named(environment, monkeypatch):
    monkeypatch.delenv("TABLE_NAME")
    with pytest.raises(SettingsError, match="^TABLE_NAME is not set$"):
        settings()


@pytest.mark.parametrize(("name", "value"), [
    ("MAX_LISTENERS_PER_SESSION", "many"), ("MAX_LISTENERS_PER_SESSION", "0"), ("MAX_AUDIO_BYTES", "-1"),
    ("SESSION_TTL_HOURS", "1.5"), ("PAUSE_BUFFER_SECONDS", ""), ("SESSION_TTL_HOURS", "²"),
])
def test_a_malformed_number_is_named_without_repeating_its_value(environment, name, value):
    environment(name, value)
    with pytest.raises(SettingsError, match=f"^{name} must be a whole number of at least [01]$") as raised:
        settings()
    assert value not in str(raised.value) or value == ""


@pytest.mark.parametrize(("name", "value"), [("LEGACY_WEBSOCKET_SESSION_CREATION", "yes"),
                                             ("ALLOW_ANONYMOUS_LISTENERS", "True")])
def test_a_switch_takes_only_its_two_words(environment, name, value):
    environment(name, value)
    with pytest.raises(SettingsError, match=f"^{name} must be '.+' or '.+'$"):
        settings()


def test_a_setting_a_code_path_needs_is_named_when_it_is_missing(environment):
    with pytest.raises(SettingsError, match="^TEARDOWN_STATE_MACHINE_ARN is not set$"):
        settings().required("teardown_state_machine_arn")
    environment("TEARDOWN_STATE_MACHINE_ARN", "arn:aws:states:eu-west-1:123456789012:stateMachine:teardown")
    settings.cache_clear()
    assert settings().required("teardown_state_machine_arn").endswith(":teardown")


def test_nothing_but_the_settings_reads_the_environment():
    # observability.py reads Powertools' and Lambda's own variables the way Powertools does (its docstrings say so).
    readers = {path.relative_to(LAYER).as_posix() for path in LAYER.rglob("*.py")
               if re.search(r"\bos\.(environ|getenv)\b", path.read_text())}
    assert readers == {settings_module.__name__.removeprefix("session_core.").replace(".", "/") + ".py",
                       "platform/observability.py"}
