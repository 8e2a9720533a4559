"""Request bodies, checked with pydantic (the session itself is domain.Session, plain Python).

Timestamps are integer epoch seconds everywhere (API, table, TTL attribute).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from .domain import (
    ACCESS_MODES,
    DEFAULT_MAX_BUFFER_TIMEOUT,
    DEFAULT_MIN_STABILITY,
    DEFAULT_PARTIAL_RESULTS,
    PUBLIC,
    QUALITY_TIERS,
    SESSION_STATUSES,
    SUPPORTED_LANGUAGES,
    Session,
)

# The words themselves live in domain.py, without pydantic; these types are built from them.
Language = Literal[SUPPORTED_LANGUAGES]
QualityTier = Literal[QUALITY_TIERS]
SessionStatus = Literal[SESSION_STATUSES]
Access = Literal[ACCESS_MODES]

__all__ = ["DEFAULT_MAX_BUFFER_TIMEOUT", "DEFAULT_MIN_STABILITY", "DEFAULT_PARTIAL_RESULTS", "SUPPORTED_LANGUAGES",
           "Access", "CreateSessionRequest", "Language", "LegacyCreateSession", "MaxBufferTimeout",
           "MinStabilityThreshold", "QualityTier", "Session", "SessionStatus", "UpdateSessionRequest"]


# The ranges of the transcription pipeline's partial-results settings (their defaults: domain.py).
MinStabilityThreshold = Annotated[float, Field(ge=0.70, le=0.95)]
MaxBufferTimeout = Annotated[float, Field(ge=2.0, le=10.0)]  # seconds


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
