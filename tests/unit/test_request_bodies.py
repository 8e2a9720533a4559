"""The request bodies (models.py) are checked by pydantic_core from a declared schema, without pydantic: here they
give what pydantic models written from the same domain words give, for a broad corpus of good and bad bodies --
the same values, or the same errors (type, place, message) and so the same API error."""

from __future__ import annotations

import dataclasses
import itertools
import json
from functools import partial
from typing import Annotated, Literal

import pydantic
import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from session_core import errors, models
from session_core.api import validation
from session_core.domain import (
    ACCESS_MODES,
    DEFAULT_MAX_BUFFER_TIMEOUT,
    DEFAULT_MIN_STABILITY,
    DEFAULT_PARTIAL_RESULTS,
    QUALITY_TIERS,
    SESSION_STATUSES,
    SUPPORTED_LANGUAGES,
)

# The reference: the bodies as pydantic models, as they were written before models.py left pydantic.
Stability = Annotated[float, Field(ge=0.70, le=0.95)]
BufferTimeout = Annotated[float, Field(ge=2.0, le=10.0)]


# Named as models.py names them: the name is in pydantic's messages ("... or instance of CreateSessionRequest").
class CreateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    sourceLanguage: Literal[SUPPORTED_LANGUAGES]
    qualityTier: Literal[QUALITY_TIERS] = "standard"
    partialResultsEnabled: bool = DEFAULT_PARTIAL_RESULTS
    minStabilityThreshold: Stability = DEFAULT_MIN_STABILITY
    maxBufferTimeout: BufferTimeout = DEFAULT_MAX_BUFFER_TIMEOUT
    access: Literal[ACCESS_MODES] = "link"



class UpdateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    status: Literal[SESSION_STATUSES] | None = None
    sourceLanguage: Literal[SUPPORTED_LANGUAGES] | None = None
    qualityTier: Literal[QUALITY_TIERS] | None = None

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



def _true_or_false(value: object) -> object:
    return {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value


class LegacyCreateSession(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)

    sourceLanguage: Literal[SUPPORTED_LANGUAGES]
    qualityTier: Literal[QUALITY_TIERS] = "standard"
    partialResults: Annotated[bool, BeforeValidator(_true_or_false)] = DEFAULT_PARTIAL_RESULTS
    minStability: Stability = DEFAULT_MIN_STABILITY
    maxBufferTimeout: BufferTimeout = DEFAULT_MAX_BUFFER_TIMEOUT


PAIRS = [(CreateSessionRequest, models.CreateSessionRequest), (UpdateSessionRequest, models.UpdateSessionRequest),
         (LegacyCreateSession, models.LegacyCreateSession)]

# Values of every JSON kind, at and beyond each field's limits.
VALUES = ["en", "zh", "EN", "xx", "", " en", "standard", "premium", "Premium", "active", "paused", "ended", "link",
          "public", "true", "false", "True", "TRUE", "yes", "on", "t", "0.8", "1", "0", True, False, None, 0, 1, -1,
          2, 5, 10, 11, 0.7, 0.69999, 0.85, 0.95, 0.9500001, 2.0, 1.99, 10.0, 10.0001, 1e308, -0.0, [], ["en"], {},
          {"a": 1}]
# Raw bodies: not JSON, not an object, bad UTF-8, and JSON's edge cases.
RAW = ["", " ", "{", "}", "[]", "[1]", "null", "1", "1.5", '"x"', "true", "{'sourceLanguage': 'en'}",
       '{"sourceLanguage": "en",}', '{"sourceLanguage": "en"} x', '{"sourceLanguage": NaN}',
       '{"sourceLanguage": "en", "minStabilityThreshold": NaN}',
       '{"sourceLanguage": "en", "maxBufferTimeout": Infinity}',
       '{"sourceLanguage": "en", "maxBufferTimeout": 1e400}', '{"sourceLanguage": "en", "sourceLanguage": "xx"}',
       '{"sourceLanguage": "xx", "sourceLanguage": "en"}', '{"status": "ended", "status": null}',
       '{"sourceLanguage": "\\u0065n"}', '{"sourceLanguage": "en\\u0000"}', "\ufeff{\"sourceLanguage\": \"en\"}",
       b"\xff", b"\xfe\xff", b'{"sourceLanguage": "\xff"}', b'{"sourceLanguage": "en", "\xc3\x28": 1}',
       b'{"status": "paused"}', '{"sourceLanguage": "en", "minStabilityThreshold": 8.5e-1}', "{}", "{\"\": 1}"]


def bodies(fields: list[str]) -> list[object]:
    """Each field alone and beside a good body with each value, unknown fields, nulls, and pairs of bad values."""
    good = {"sourceLanguage": "en"}
    corpus: list[object] = [{}, good, {**good, "extra": 1}, {"extra": None}, {**good, "qualityTier": None}]
    for name, value in itertools.product(fields + ["unknown", "SourceLanguage"], VALUES):
        corpus += [{name: value}, {**good, name: value}]
    for first, second in itertools.combinations(fields, 2):
        corpus += [{first: 1, second: "x"}, {first: None, second: None}, {**good, first: [], second: {}}]
    return corpus


def outcome(validate) -> tuple[str, object]:
    try:
        result = validate()
    except pydantic.ValidationError as exc:  # pydantic's ValidationError is pydantic_core's
        problems = exc.errors(include_url=False, include_input=False, include_context=False)
        api = validation._error(exc)
        return "refused", ([(p["type"], p["loc"], p["msg"]) for p in problems], type(api), api.message)
    return "built", result.model_dump() if isinstance(result, BaseModel) else dataclasses.asdict(result)


def corpus_for(reference: type[BaseModel]) -> tuple[list[object], list[str | bytes]]:
    data = bodies(list(reference.model_fields))
    return data, [json.dumps(body) for body in data] + RAW


@pytest.mark.parametrize(("reference", "body"), PAIRS, ids=lambda model: model.__name__)
def test_every_body_gets_what_pydantic_gives(reference, body):
    data, raw = corpus_for(reference)
    differences = []
    for item in raw:
        expected, got = outcome(partial(reference.model_validate_json, item)), outcome(partial(body.from_json, item))
        if expected != got:
            differences.append((item, expected, got))
    for item in data + [None, [], "x", 1, ({"sourceLanguage": "en"},)]:
        expected, got = outcome(partial(reference.model_validate, item)), outcome(partial(body.from_data, item))
        if expected != got:
            differences.append((item, expected, got))
    assert not differences, differences[:5]


def test_the_corpus_reaches_every_kind_of_answer():
    # The comparison means something only if both sides refuse in every way the API tells apart.
    seen = set()
    for reference, _ in PAIRS:
        _, raw = corpus_for(reference)
        for item in raw:
            kind, detail = outcome(partial(reference.model_validate_json, item))
            seen.add((reference.__name__, kind, detail[2].split(":")[0] if kind == "refused" else ""))
            if kind == "refused":
                seen |= {("type", problem[0]) for problem in detail[0]}
    assert {("CreateSessionRequest", "built", ""), ("CreateSessionRequest", "refused", "Invalid request"),
            ("CreateSessionRequest", "refused", "The request body must be a JSON object."),
            ("CreateSessionRequest", "refused", "The request body is not valid JSON."),
            ("UpdateSessionRequest", "built", ""), ("UpdateSessionRequest", "refused", "Invalid request"),
            ("LegacyCreateSession", "built", "")} <= seen
    assert {("type", kind) for kind in ("missing", "extra_forbidden", "literal_error", "bool_type", "float_type",
                                        "greater_than_equal", "less_than_equal", "value_error", "model_type",
                                        "json_invalid")} <= seen


def test_bodies_are_frozen_and_typed():
    request = models.CreateSessionRequest.from_json('{"sourceLanguage": "fr", "partialResultsEnabled": false}')
    assert request == models.CreateSessionRequest(sourceLanguage="fr", partialResultsEnabled=False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.sourceLanguage = "en"  # type: ignore[misc]
    assert models.UpdateSessionRequest.from_json('{"status": "paused"}').changes() == {"status": "paused"}
    legacy = models.LegacyCreateSession.from_data({"sourceLanguage": "de", "partialResults": "false"})
    assert legacy.as_create_request() == models.CreateSessionRequest(
        sourceLanguage="de", partialResultsEnabled=False, access="public")


def test_a_bad_body_is_a_clear_validation_error():
    with pytest.raises(errors.ValidationError) as refused:
        validation.parse_json(models.CreateSessionRequest, '{"sourceLanguage": "en", "maxBufferTimeout": 11}')
    assert refused.value.message == "Invalid request: maxBufferTimeout: Input should be less than or equal to 10"
    with pytest.raises(errors.InvalidJson):
        validation.parse_json(models.UpdateSessionRequest, b"\xff")
