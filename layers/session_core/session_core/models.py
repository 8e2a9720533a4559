"""Session model and request bodies.

Timestamps are integer epoch seconds everywhere (API, table, TTL attribute).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, NonNegativeInt, model_validator

from .domain import ACCESS_MODES, PUBLIC, QUALITY_TIERS, SESSION_STATUSES, SUPPORTED_LANGUAGES

# The words themselves live in domain.py, without pydantic; these types are built from them.
Language = Literal[SUPPORTED_LANGUAGES]
QualityTier = Literal[QUALITY_TIERS]
SessionStatus = Literal[SESSION_STATUSES]
Access = Literal[ACCESS_MODES]

__all__ = ["DEFAULT_MAX_BUFFER_TIMEOUT", "DEFAULT_MIN_STABILITY", "DEFAULT_PARTIAL_RESULTS", "SUPPORTED_LANGUAGES",
           "Access", "CreateSessionRequest", "Language", "LegacyCreateSession", "MaxBufferTimeout",
           "MinStabilityThreshold", "QualityTier", "Session", "SessionStatus", "UpdateSessionRequest"]


# The transcription pipeline's partial-results settings, kept on the session and
# carried in each audio record. A session created without them gets these defaults.
MinStabilityThreshold = Annotated[float, Field(ge=0.70, le=0.95)]
MaxBufferTimeout = Annotated[float, Field(ge=2.0, le=10.0)]  # seconds
DEFAULT_PARTIAL_RESULTS = True
DEFAULT_MIN_STABILITY = 0.85
DEFAULT_MAX_BUFFER_TIMEOUT = 5.0


class _Body(BaseModel):
    # Unknown fields and type coercion ("1" for 1) are errors, not surprises. The validators are built
    # on first use: only create and update parse a body, every other function starts without building them.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class CreateSessionRequest(_Body):
    sourceLanguage: Language
    qualityTier: QualityTier = "standard"
    partialResultsEnabled: bool = DEFAULT_PARTIAL_RESULTS
    minStabilityThreshold: MinStabilityThreshold = DEFAULT_MIN_STABILITY
    maxBufferTimeout: MaxBufferTimeout = DEFAULT_MAX_BUFFER_TIMEOUT
    # link: anonymous listeners need the session's join key; public: its ID is enough.
    access: Access = "link"


# The old createSession message's body (api/dialects/renamed.py).
def _true_or_false(value: object) -> object:
    # Old clients send partialResults as a boolean or as the strings "true" / "false".
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


class LegacyCreateSession(BaseModel):
    # Strict like the new bodies (no "0.8" for 0.8); fields it does not name were dropped by accept().
    model_config = ConfigDict(strict=True, frozen=True, defer_build=True)  # built by the first createSession

    sourceLanguage: Language
    qualityTier: QualityTier = "standard"
    partialResults: Annotated[bool, BeforeValidator(_true_or_false)] = DEFAULT_PARTIAL_RESULTS
    minStability: MinStabilityThreshold = DEFAULT_MIN_STABILITY
    maxBufferTimeout: MaxBufferTimeout = DEFAULT_MAX_BUFFER_TIMEOUT

    def as_create_request(self) -> CreateSessionRequest:
        return CreateSessionRequest(sourceLanguage=self.sourceLanguage, qualityTier=self.qualityTier,
                                    partialResultsEnabled=self.partialResults,
                                    minStabilityThreshold=self.minStability, maxBufferTimeout=self.maxBufferTimeout,
                                    access=PUBLIC)  # as sessions of the old protocol always were


class UpdateSessionRequest(_Body):
    status: SessionStatus | None = None
    sourceLanguage: Language | None = None
    qualityTier: QualityTier | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls_and_not_empty(cls, data: object) -> object:
        if isinstance(data, dict):
            if not data:
                raise ValueError("give at least one of status, sourceLanguage, qualityTier")
            nulls = sorted(k for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"null is not a value for: {', '.join(nulls)}")
        return data

    def changes(self) -> dict[str, str]:
        return self.model_dump(exclude_none=True)


class Session(BaseModel):
    model_config = ConfigDict(frozen=True)

    sessionId: str
    speakerId: str
    sourceLanguage: Language
    qualityTier: QualityTier
    status: SessionStatus
    partialResultsEnabled: bool = DEFAULT_PARTIAL_RESULTS
    minStabilityThreshold: float = DEFAULT_MIN_STABILITY
    maxBufferTimeout: float = DEFAULT_MAX_BUFFER_TIMEOUT
    listenerCount: NonNegativeInt = 0
    createdAt: int
    updatedAt: int
    expiresAt: int
    version: int = Field(ge=1)
    endedAt: int | None = None
    resumedAt: int | None = None
    # A session stored before access existed was joinable by its ID: public.
    access: Access = PUBLIC
    # A link session's key: only its owner is shown it (usecases/sessions.py, for_viewer).
    joinKey: str | None = None
    # Internal bookkeeping, never part of the API body.
    bufferedChunks: NonNegativeInt = Field(0, exclude=True)
    # Muted by its speaker (WebSocket mute/unmute): audio is dropped, listeners are told.
    muted: bool = Field(False, exclude=True)
    # Listeners by the language they hear; "" is the source language (data/connections.py counts them).
    languageCounts: dict[str, int] = Field(default_factory=dict, exclude=True)
    # The speaker's open connection, if any, and when its last one closed (docs/protocols.md, "Live states").
    speakerConnectionId: str | None = Field(None, exclude=True)
    speakerDisconnectedAt: int | None = Field(None, exclude=True)

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
