"""Configuration from the function's environment (set by template.yaml): the only module that reads it.

Each function gets only the variables it uses; everything but the table name has a default, so a
missing variable never breaks an unrelated function. Every value is checked when the settings are first
read (once per execution environment): a malformed one fails with an error naming the variable.

A plain dataclass, not pydantic-settings: the functions that start without pydantic read settings too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


class SettingsError(RuntimeError):
    """A variable of the function's environment is missing or malformed (a deployment fault)."""


@dataclass(frozen=True)
class Settings:
    table_name: str
    session_ttl_seconds: int
    stage: str
    max_listeners: int
    # Live (not ended, not expired) sessions one user may hold at once.
    max_live_sessions: int
    max_audio_bytes: int
    pause_buffer_seconds: int
    audio_stream_name: str
    # The stream through which the pipeline hands over translated audio (its records are told from the floor's by it).
    translated_audio_stream_arn: str
    # The fan-out's workers' stream (usecases/slices.py); unset: every language is posted inline.
    audio_slice_stream_name: str
    audio_slice_threshold: int  # listeners of one language above which its chunks go to the workers in slices
    audio_slice_listeners: int  # listeners a slice holds, about
    legacy_creation_enabled: bool
    allow_anonymous_listeners: bool
    jwt_issuer: str
    jwt_audiences: tuple[str, ...]
    jwks_url: str | None
    websocket_management_url: str
    teardown_state_machine_arn: str
    welcome_function_name: str
    # Where referenced audio chunks are stored (data/chunk_store.py) and how long a chunk's URL is valid.
    chunk_bucket_name: str
    chunk_url_seconds: int
    # How old a connection is when the published clients are asked to refresh it (API Gateway closes it at 2 h).
    connection_refresh_seconds: int
    # Set by the SAM CLI in its containers; the HTTP functions then verify tokens themselves.
    sam_local: bool

    def required(self, name: str) -> str:
        """The value of a setting a code path cannot work without (its variable is given to that function only)."""
        value = getattr(self, name)
        if not value:
            raise SettingsError(f"{name.upper()} is not set")
        return value


@cache
def settings() -> Settings:
    return Settings(
        table_name=_text("TABLE_NAME", required=True),
        session_ttl_seconds=_whole_number("SESSION_TTL_HOURS", 24) * 3600,
        stage=stage(),
        max_listeners=_whole_number("MAX_LISTENERS_PER_SESSION", 500),
        max_live_sessions=_whole_number("MAX_LIVE_SESSIONS_PER_USER", 3),
        max_audio_bytes=_whole_number("MAX_AUDIO_BYTES", 1024 * 1024),
        pause_buffer_seconds=_whole_number("PAUSE_BUFFER_SECONDS", 30, minimum=0),
        audio_stream_name=_text("AUDIO_STREAM_NAME"),
        translated_audio_stream_arn=_text("TRANSLATED_AUDIO_STREAM_ARN"),
        audio_slice_stream_name=_text("AUDIO_SLICE_STREAM_NAME"),
        audio_slice_threshold=_whole_number("AUDIO_SLICE_THRESHOLD", 100),
        audio_slice_listeners=_whole_number("AUDIO_SLICE_LISTENERS", 64),
        legacy_creation_enabled=_switch("LEGACY_WEBSOCKET_SESSION_CREATION", "enabled", on="enabled", off="disabled"),
        allow_anonymous_listeners=_switch("ALLOW_ANONYMOUS_LISTENERS", "true", on="true", off="false"),
        jwt_issuer=_text("JWT_ISSUER"),
        jwt_audiences=tuple(a for a in _text("JWT_AUDIENCE").split(",") if a),
        jwks_url=_text("JWKS_URL") or None,
        websocket_management_url=_text("WEBSOCKET_MANAGEMENT_URL"),
        teardown_state_machine_arn=_text("TEARDOWN_STATE_MACHINE_ARN"),
        welcome_function_name=_text("WELCOME_FUNCTION_NAME"),
        chunk_bucket_name=_text("CHUNK_BUCKET_NAME"),
        chunk_url_seconds=_whole_number("CHUNK_URL_SECONDS", 120),
        connection_refresh_seconds=_whole_number("CONNECTION_REFRESH_SECONDS", 100 * 60),
        sam_local=os.environ.get("AWS_SAM_LOCAL") == "true",
    )


def stage() -> str:
    """The stage alone: every metric carries it from import on, whether or not the other settings are valid."""
    return _text("STAGE_NAME", "dev")


def _text(name: str, default: str = "", *, required: bool = False) -> str:
    value = os.environ.get(name, default)
    if required and not value:
        raise SettingsError(f"{name} is not set")
    return value


def _whole_number(name: str, default: int, *, minimum: int = 1) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    # The value itself is not repeated: a mistyped variable may hold anything.
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise SettingsError(f"{name} must be a whole number of at least {minimum}")
    return int(value)


def _switch(name: str, default: str, *, on: str, off: str) -> bool:
    value = os.environ.get(name, default)
    if value not in (on, off):
        raise SettingsError(f"{name} must be {on!r} or {off!r}")
    return value == on
