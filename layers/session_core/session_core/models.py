"""Session model and request bodies.

Timestamps are integer epoch seconds everywhere (API, table, TTL attribute).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from .domain import QUALITY_TIERS, SESSION_STATUSES, SUPPORTED_LANGUAGES

# The words themselves live in domain.py, without pydantic; these types are built from them.
Language = Literal[SUPPORTED_LANGUAGES]
QualityTier = Literal[QUALITY_TIERS]
SessionStatus = Literal[SESSION_STATUSES]

__all__ = ["DEFAULT_MAX_BUFFER_TIMEOUT", "DEFAULT_MIN_STABILITY", "DEFAULT_PARTIAL_RESULTS", "SUPPORTED_LANGUAGES",
           "CreateSessionRequest", "Language", "MaxBufferTimeout", "MinStabilityThreshold", "QualityTier",
           "Session", "SessionStatus", "UpdateSessionRequest"]


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
