"""The session as the API returns it, and the values its fields take."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

QualityTier = Literal["standard", "premium"]
SessionStatus = Literal["active", "paused", "ended"]
Role = Literal["speaker", "listener"]
# link: anonymous listeners need the session's join key (in its listener link); public: its ID is enough.
Access = Literal["link", "public"]

# ISO 639-1 codes the service accepts (docs/openapi.yaml, Language).
LANGUAGES: tuple[str, ...] = ("en", "es", "fr", "de", "it", "pt", "ru", "ja", "ko", "zh",
                              "ar", "hi", "nl", "pl", "tr", "sv", "da", "no", "fi")
QUALITY_TIERS: tuple[str, ...] = ("standard", "premium")
STATUSES: tuple[str, ...] = ("active", "paused", "ended")


@dataclass(frozen=True)
class Session:
    """A broadcast session. Timestamps are epoch seconds."""

    session_id: str
    speaker_id: str
    source_language: str
    quality_tier: str
    status: str
    listener_count: int
    created_at: int
    updated_at: int
    expires_at: int
    version: int
    ended_at: int | None = None
    resumed_at: int | None = None
    # The partial-results settings (None from a server that predates them).
    partial_results_enabled: bool | None = None
    min_stability_threshold: float | None = None
    max_buffer_timeout: float | None = None
    # Who may join anonymously (None from a server that predates access) and, for a link session, its key:
    # the service shows the key to the session's speaker only.
    access: str | None = None
    join_key: str | None = None

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Session:
        """Raises KeyError, TypeError or ValueError when a required field is missing or malformed."""
        def optional(name: str, kind: type = int) -> Any:
            value = body.get(name)
            return None if value is None else kind(value)

        return cls(
            session_id=str(body["sessionId"]),
            speaker_id=str(body["speakerId"]),
            source_language=str(body["sourceLanguage"]),
            quality_tier=str(body["qualityTier"]),
            status=str(body["status"]),
            listener_count=int(body["listenerCount"]),
            created_at=int(body["createdAt"]),
            updated_at=int(body["updatedAt"]),
            expires_at=int(body["expiresAt"]),
            version=int(body["version"]),
            ended_at=optional("endedAt"),
            resumed_at=optional("resumedAt"),
            partial_results_enabled=optional("partialResultsEnabled", bool),
            min_stability_threshold=optional("minStabilityThreshold", float),
            max_buffer_timeout=optional("maxBufferTimeout", float),
            access=optional("access", str),
            join_key=optional("joinKey", str),
        )

    def to_json(self) -> dict[str, Any]:
        """The API's camelCase shape (optional fields only when set)."""
        body: dict[str, Any] = {
            "sessionId": self.session_id, "speakerId": self.speaker_id, "sourceLanguage": self.source_language,
            "qualityTier": self.quality_tier, "status": self.status, "listenerCount": self.listener_count,
            "createdAt": self.created_at, "updatedAt": self.updated_at, "expiresAt": self.expires_at,
            "version": self.version,
        }
        if self.ended_at is not None:
            body["endedAt"] = self.ended_at
        if self.resumed_at is not None:
            body["resumedAt"] = self.resumed_at
        for name, value in (("partialResultsEnabled", self.partial_results_enabled),
                            ("minStabilityThreshold", self.min_stability_threshold),
                            ("maxBufferTimeout", self.max_buffer_timeout), ("access", self.access),
                            ("joinKey", self.join_key)):
            if value is not None:
                body[name] = value
        return body
