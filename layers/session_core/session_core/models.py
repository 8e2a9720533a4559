"""Session model, request bodies and the status lifecycle.

Timestamps are integer epoch seconds everywhere (API, table, TTL attribute).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from .domain import (
    ACTIVE,
    ENDED,
    LISTENER,
    PAUSED,
    QUALITY_TIERS,
    ROLES,
    SESSION_STATUSES,
    SPEAKER,
    SUPPORTED_LANGUAGES,
    TRANSITIONS,
    ConnectionContext,
    can_transition,
)

# The words themselves live in domain.py, without pydantic; these types are built from them.
Language = Literal[SUPPORTED_LANGUAGES]
QualityTier = Literal[QUALITY_TIERS]
SessionStatus = Literal[SESSION_STATUSES]
Role = Literal[ROLES]

__all__ = ["ACTIVE", "ENDED", "LISTENER", "PAUSED", "SPEAKER", "SUPPORTED_LANGUAGES", "TRANSITIONS",
           "ConnectionContext", "CreateSessionRequest", "Language", "QualityTier", "Role", "Session",
           "SessionStatus", "UpdateSessionRequest", "can_transition"]


class _Body(BaseModel):
    # Unknown fields and type coercion ("1" for 1) are errors, not surprises. The validators are built
    # on first use: only create and update parse a body, every other function starts without building them.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class CreateSessionRequest(_Body):
    sourceLanguage: Language
    qualityTier: QualityTier = "standard"


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
