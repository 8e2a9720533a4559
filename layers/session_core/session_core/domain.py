"""The service's words -- languages, tiers, statuses, roles -- and the connection
context, in plain Python.

Kept apart from models.py (pydantic) so that what only reads them starts without
pydantic: the authorizer, $connect, $disconnect, heartbeat and $default. The
pydantic models build their Literal types from these tuples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

# ISO 639-1 codes the transcription pipeline supports.
SUPPORTED_LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "de", "it", "pt", "ru", "ja", "ko", "zh",
                                        "ar", "hi", "nl", "pl", "tr", "sv", "da", "no", "fi")
QUALITY_TIERS: tuple[str, ...] = ("standard", "premium")
SESSION_STATUSES: tuple[str, ...] = ("active", "paused", "ended")
ACTIVE, PAUSED, ENDED = SESSION_STATUSES
# The speaker's controls over the WebSocket (the native actions; every dialect's names map onto these).
SPEAKER_CONTROLS: tuple[str, ...] = ("pause", "resume", "mute", "unmute")
PAUSE, RESUME, MUTE, UNMUTE = SPEAKER_CONTROLS
ROLES: tuple[str, ...] = ("speaker", "listener")
SPEAKER, LISTENER = ROLES
# The protocols a connection may speak (api/dialects/): this service's own; the published hybrid
# front-end's (no role in its query); the old protocol's (an `action` in its query).
DIALECTS: tuple[str, ...] = ("native", "hybrid", "old")
NATIVE, HYBRID, OLD = DIALECTS
# How a listener is sent audio (docs/protocols.md "Audio to listeners"): each chunk in a message, or a stored
# chunk of about 2 s by URL; "" is its dialect's way (the hybrid listener client's is referenced, the others' inline).
DELIVERIES: tuple[str, ...] = ("inline", "referenced")
INLINE, REFERENCED = DELIVERIES
# Who may join a session anonymously: whoever has its link (the join key), or anyone with its ID.
ACCESS_MODES: tuple[str, ...] = ("link", "public")
LINK, PUBLIC = ACCESS_MODES

@dataclass(frozen=True, kw_only=True)
class ConnectionContext:
    """What the WebSocket authorizer decided at $connect. API Gateway hands it
    to every later route of the connection as requestContext.authorizer."""

    sessionId: str = ""  # empty on a legacy connection until it creates a session
    role: str
    userId: str = ""  # empty for anonymous listeners
    targetLanguage: str = ""
    legacy: bool = False  # the session lives as long as this (speaker) connection: created over the WebSocket
    dialect: str = NATIVE
    delivery: str = ""  # a listener's choice of DELIVERIES ("": its dialect's)

    @classmethod
    def from_authorizer(cls, context: Mapping) -> ConnectionContext:
        """The context the authorizer returned; ValueError if it is not one (unknown keys, such as
        API Gateway's principalId, are ignored). A boolean may arrive as "true"/"false"."""
        role = context.get("role")
        if role not in ROLES:
            raise ValueError("no role")
        dialect = context.get("dialect", NATIVE)
        if dialect not in DIALECTS:
            raise ValueError("no dialect")
        legacy = context.get("legacy", False)
        if isinstance(legacy, str) and legacy in ("true", "false"):
            legacy = legacy == "true"
        texts = {name: context.get(name, "") for name in ("sessionId", "userId", "targetLanguage", "delivery")}
        if not isinstance(legacy, bool) or not all(isinstance(value, str) for value in texts.values()):
            raise ValueError("not an authorizer context")
        if texts["delivery"] not in ("", *DELIVERIES):
            raise ValueError("no delivery")
        return cls(role=role, legacy=legacy, dialect=dialect, **texts)

    def as_authorizer_context(self) -> dict:
        return asdict(self)
