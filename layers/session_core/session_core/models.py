"""Session model, request bodies and the status lifecycle.

Timestamps are integer epoch seconds everywhere (API, table, TTL attribute).
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

# ISO 639-1 codes the transcription pipeline supports.
Language = Literal["en", "es", "fr", "de", "it", "pt", "ru", "ja", "ko", "zh",
                   "ar", "hi", "nl", "pl", "tr", "sv", "da", "no", "fi"]
SUPPORTED_LANGUAGES: tuple[str, ...] = get_args(Language)

QualityTier = Literal["standard", "premium"]
SessionStatus = Literal["active", "paused", "ended"]

ACTIVE, PAUSED, ENDED = get_args(SessionStatus)

# Which statuses a session may move to from each status. Staying put is
# allowed (idempotent retries); ended is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    ACTIVE: frozenset({ACTIVE, PAUSED, ENDED}),
    PAUSED: frozenset({ACTIVE, PAUSED, ENDED}),
    ENDED: frozenset(),
}


def can_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


# The transcription pipeline's partial-results settings, kept on the session and
# carried in each audio record. A session created without them gets these defaults.
MinStabilityThreshold = Annotated[float, Field(ge=0.70, le=0.95)]
MaxBufferTimeout = Annotated[float, Field(ge=2.0, le=10.0)]  # seconds
DEFAULT_PARTIAL_RESULTS = True
DEFAULT_MIN_STABILITY = 0.85
DEFAULT_MAX_BUFFER_TIMEOUT = 5.0


class _Body(BaseModel):
    # Unknown fields and type coercion ("1" for 1) are errors, not surprises.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class CreateSessionRequest(_Body):
    sourceLanguage: Language
    qualityTier: QualityTier = "standard"
    partialResultsEnabled: bool = DEFAULT_PARTIAL_RESULTS
    minStabilityThreshold: MinStabilityThreshold = DEFAULT_MIN_STABILITY
    maxBufferTimeout: MaxBufferTimeout = DEFAULT_MAX_BUFFER_TIMEOUT


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
    # Internal bookkeeping, never part of the API body.
    bufferedChunks: NonNegativeInt = Field(0, exclude=True)

    def is_expired(self, now: int) -> bool:
        return self.expiresAt <= now


Role = Literal["speaker", "listener"]
SPEAKER, LISTENER = get_args(Role)


class ConnectionContext(BaseModel):
    """What the WebSocket authorizer decided at $connect. API Gateway hands it
    to every later route of the connection as requestContext.authorizer."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sessionId: str = ""  # empty on a legacy connection until it creates a session
    role: Role
    userId: str = ""  # empty for anonymous listeners
    targetLanguage: str = ""
    legacy: bool = False
