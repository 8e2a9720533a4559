"""Request bodies: frozen dataclasses, checked by pydantic's engine (pydantic_core) against a schema declared
beside each field (the session itself is domain.Session, plain Python).

pydantic_core without pydantic: the same checks, error types and messages as a pydantic model with the same
fields, without pydantic's model layer to import (≈ 0.25x of a cold start, docs/performance.md). The schema
is data (`pydantic_core.core_schema`), one entry per field, so there is no hand-written checker to keep in step.

Timestamps are integer epoch seconds everywhere (API, table, TTL attribute).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal, Self

from pydantic_core import SchemaValidator, core_schema

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

# The words themselves live in domain.py; these types (for type checking) and the schemas below are built from them.
Language = Literal[SUPPORTED_LANGUAGES]
QualityTier = Literal[QUALITY_TIERS]
SessionStatus = Literal[SESSION_STATUSES]
Access = Literal[ACCESS_MODES]

__all__ = ["ACCESS", "DEFAULT_MAX_BUFFER_TIMEOUT", "DEFAULT_MIN_STABILITY", "DEFAULT_PARTIAL_RESULTS", "LANGUAGE",
           "MAX_BUFFER_TIMEOUT", "MIN_STABILITY_THRESHOLD", "QUALITY_TIER", "SESSION_STATUS", "SUPPORTED_LANGUAGES",
           "Access", "CreateSessionRequest", "Language", "LegacyCreateSession", "QualityTier", "RequestBody", "Session",
           "SessionStatus", "UpdateSessionRequest"]

LANGUAGE = core_schema.literal_schema(list(SUPPORTED_LANGUAGES))
QUALITY_TIER = core_schema.literal_schema(list(QUALITY_TIERS))
SESSION_STATUS = core_schema.literal_schema(list(SESSION_STATUSES))
ACCESS = core_schema.literal_schema(list(ACCESS_MODES))
BOOLEAN = core_schema.bool_schema()
# The ranges of the transcription pipeline's partial-results settings (their defaults: domain.py).
MIN_STABILITY_THRESHOLD = core_schema.float_schema(ge=0.70, le=0.95)
MAX_BUFFER_TIMEOUT = core_schema.float_schema(ge=2.0, le=10.0)  # seconds


def checked_by(schema: core_schema.CoreSchema) -> dict[str, Any]:
    """A body field's metadata: the schema its value is checked against."""
    return {"schema": schema}


class RequestBody:
    """A request body: `from_json` / `from_data` check it and build it, or raise pydantic_core.ValidationError.

    Unknown fields and type coercion ("1" for 1) are errors, not surprises (`FORBID_EXTRA`, strict). Each
    validator is built on first use: only create, update and the old createSession parse a body.
    """

    FORBID_EXTRA = True

    @classmethod
    def from_json(cls, raw: str | bytes) -> Self:
        values, _, _ = _validator(cls).validate_json(raw)
        return cls(**values)

    @classmethod
    def from_data(cls, data: object) -> Self:
        values, _, _ = _validator(cls).validate_python(data)
        return cls(**values)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(each.name for each in dataclasses.fields(cls))

    @classmethod
    def before(cls, data: object) -> object:
        """A check of the whole body before its fields' (none by default)."""
        return data


@cache
def _validator(body: type[RequestBody]) -> SchemaValidator:
    fields = {}
    for each in dataclasses.fields(body):
        schema = each.metadata["schema"]
        if each.default is not dataclasses.MISSING:
            schema = core_schema.with_default_schema(schema, default=each.default)
        fields[each.name] = core_schema.model_field(schema)
    # model_fields_schema with the body's name: a non-object body gets the model's error (model_type).
    schema = core_schema.model_fields_schema(fields, model_name=body.__name__)
    if "before" in vars(body):  # a body with a check of its own
        schema = core_schema.no_info_before_validator_function(body.before, schema)
    config = core_schema.CoreConfig(title=body.__name__, strict=True,
                                    extra_fields_behavior="forbid" if body.FORBID_EXTRA else "ignore")
    return SchemaValidator(schema, config)


@dataclass(frozen=True, kw_only=True)
class CreateSessionRequest(RequestBody):
    sourceLanguage: Language = field(metadata=checked_by(LANGUAGE))
    qualityTier: QualityTier = field(default="standard", metadata=checked_by(QUALITY_TIER))
    partialResultsEnabled: bool = field(default=DEFAULT_PARTIAL_RESULTS, metadata=checked_by(BOOLEAN))
    minStabilityThreshold: float = field(default=DEFAULT_MIN_STABILITY, metadata=checked_by(MIN_STABILITY_THRESHOLD))
    maxBufferTimeout: float = field(default=DEFAULT_MAX_BUFFER_TIMEOUT, metadata=checked_by(MAX_BUFFER_TIMEOUT))
    # link: anonymous listeners need the session's join key; public: its ID is enough.
    access: Access = field(default="link", metadata=checked_by(ACCESS))


# The old createSession message's body (api/dialects/renamed.py).
def _true_or_false(value: object) -> object:
    # Old clients send partialResults as a boolean or as the strings "true" / "false".
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


TRUE_OR_FALSE = core_schema.no_info_before_validator_function(_true_or_false, BOOLEAN)


@dataclass(frozen=True, kw_only=True)
class LegacyCreateSession(RequestBody):
    # Strict like the new bodies (no "0.8" for 0.8); fields it does not name were dropped by accept().
    FORBID_EXTRA = False

    sourceLanguage: Language = field(metadata=checked_by(LANGUAGE))
    qualityTier: QualityTier = field(default="standard", metadata=checked_by(QUALITY_TIER))
    partialResults: bool = field(default=DEFAULT_PARTIAL_RESULTS, metadata=checked_by(TRUE_OR_FALSE))
    minStability: float = field(default=DEFAULT_MIN_STABILITY, metadata=checked_by(MIN_STABILITY_THRESHOLD))
    maxBufferTimeout: float = field(default=DEFAULT_MAX_BUFFER_TIMEOUT, metadata=checked_by(MAX_BUFFER_TIMEOUT))

    def as_create_request(self) -> CreateSessionRequest:
        return CreateSessionRequest(sourceLanguage=self.sourceLanguage, qualityTier=self.qualityTier,
                                    partialResultsEnabled=self.partialResults,
                                    minStabilityThreshold=self.minStability, maxBufferTimeout=self.maxBufferTimeout,
                                    access=PUBLIC)  # as sessions of the old protocol always were


@dataclass(frozen=True, kw_only=True)
class UpdateSessionRequest(RequestBody):
    # None only as "not given": a null in the body is refused (before).
    status: SessionStatus | None = field(default=None, metadata=checked_by(SESSION_STATUS))
    sourceLanguage: Language | None = field(default=None, metadata=checked_by(LANGUAGE))
    qualityTier: QualityTier | None = field(default=None, metadata=checked_by(QUALITY_TIER))

    @classmethod
    def before(cls, data: object) -> object:
        if isinstance(data, dict):
            if not data:
                raise ValueError("give at least one of status, sourceLanguage, qualityTier")
            nulls = sorted(k for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"null is not a value for: {', '.join(nulls)}")
        return data

    def changes(self) -> dict[str, str]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}
