"""Configuration from the function's environment (set by template.yaml).

Each function gets only the variables it uses; everything but the table name
has a default, so a missing variable never breaks an unrelated function.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Settings:
    table_name: str
    session_ttl_seconds: int
    stage: str
    max_listeners: int
    max_audio_bytes: int
    pause_buffer_seconds: int
    audio_stream_name: str
    legacy_creation_enabled: bool
    allow_anonymous_listeners: bool
    jwt_issuer: str
    jwt_audiences: tuple[str, ...]
    jwks_url: str | None
    websocket_management_url: str


@cache
def settings() -> Settings:
    env = os.environ.get
    return Settings(
        table_name=os.environ["TABLE_NAME"],
        session_ttl_seconds=int(env("SESSION_TTL_HOURS", "24")) * 3600,
        stage=env("STAGE_NAME", "dev"),
        max_listeners=int(env("MAX_LISTENERS_PER_SESSION", "500")),
        max_audio_bytes=int(env("MAX_AUDIO_BYTES", str(1024 * 1024))),
        pause_buffer_seconds=int(env("PAUSE_BUFFER_SECONDS", "30")),
        audio_stream_name=env("AUDIO_STREAM_NAME", ""),
        legacy_creation_enabled=env("LEGACY_WEBSOCKET_SESSION_CREATION", "enabled") == "enabled",
        allow_anonymous_listeners=env("ALLOW_ANONYMOUS_LISTENERS", "true") == "true",
        jwt_issuer=env("JWT_ISSUER", ""),
        jwt_audiences=tuple(a for a in env("JWT_AUDIENCE", "").split(",") if a),
        jwks_url=env("JWKS_URL") or None,
        websocket_management_url=env("WEBSOCKET_MANAGEMENT_URL", ""),
    )
