"""The service's words -- languages, tiers, statuses, roles --, the connection
context and the session as read, in plain Python.

Kept apart from models.py (pydantic_core) so that what only reads them starts
without it: every function but the two that parse a request body (create, update)
and the old protocol's createSession. The request bodies build their Literal
types and schemas from these tuples.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

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

# The transcription pipeline's partial-results settings, kept on the session and carried in each audio record.
# A session created without them gets these defaults (their ranges: models.py, which checks request bodies).
DEFAULT_PARTIAL_RESULTS = True
DEFAULT_MIN_STABILITY = 0.85
DEFAULT_MAX_BUFFER_TIMEOUT = 5.0  # seconds

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


@dataclass(frozen=True)
class Connection:
    """One of a session's WebSocket connections as every use case reads it: from its item (data/connections.py,
    also for the teardown workflow's Query page) or from a slice record (usecases/slices.py)."""

    connectionId: str
    role: str
    connectedAt: int = 0  # a record written before connectedAt existed: never waited for
    dialect: str = NATIVE  # a record written before dialects existed speaks the native one


# Marks a field that is internal bookkeeping, never part of the API body.
_INTERNAL = {"api": False}


@dataclass(frozen=True, kw_only=True)
class Session:
    """A session as stored and as the API shows it. Built by this service only (from its own item, or from a
    checked request), so it is a plain dataclass: reading one needs no pydantic."""

    sessionId: str
    speakerId: str
    sourceLanguage: str
    qualityTier: str
    status: str
    partialResultsEnabled: bool = DEFAULT_PARTIAL_RESULTS
    minStabilityThreshold: float = DEFAULT_MIN_STABILITY
    maxBufferTimeout: float = DEFAULT_MAX_BUFFER_TIMEOUT
    listenerCount: int = 0
    createdAt: int
    updatedAt: int
    expiresAt: int
    version: int
    endedAt: int | None = None
    resumedAt: int | None = None
    # A session stored before access existed was joinable by its ID: public.
    access: str = PUBLIC
    # A link session's key: only its owner is shown it (usecases/sessions.py, for_viewer).
    joinKey: str | None = None
    bufferedChunks: int = field(default=0, metadata=_INTERNAL)
    # Muted by its speaker (WebSocket mute/unmute): audio is dropped, listeners are told.
    muted: bool = field(default=False, metadata=_INTERNAL)
    # Listeners by the language they hear; "" is the source language (data/connections.py counts them).
    languageCounts: dict[str, int] = field(default_factory=dict, metadata=_INTERNAL)
    # The speaker's open connection, if any, and when its last one closed (docs/protocols.md, "Live states").
    speakerConnectionId: str | None = field(default=None, metadata=_INTERNAL)
    speakerDisconnectedAt: int | None = field(default=None, metadata=_INTERNAL)
    # When the teardown workflow finished (data/sessions.finish_teardown): the sweep stops visiting it.
    teardownCompletedAt: int | None = field(default=None, metadata=_INTERNAL)

    def language_distribution(self) -> dict[str, int]:
        """Listeners by language, the source language under its own code."""
        shares: dict[str, int] = {}
        for language, count in self.languageCounts.items():
            if count > 0:
                code = language or self.sourceLanguage
                shares[code] = shares.get(code, 0) + count
        return shares

    def is_expired(self, now: int) -> bool:
        return self.expiresAt <= now

    def as_dict(self) -> dict:
        """Every field, internal ones too (the idempotency record keeps a created session this way)."""
        return asdict(self)

    def api_json(self) -> str:
        """The API's body: the public fields that have a value."""
        return json.dumps({name: value for name, value in self.api_fields().items() if value is not None},
                          separators=(",", ":"), ensure_ascii=False)

    def api_fields(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata.get("api", True)}
