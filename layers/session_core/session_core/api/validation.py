"""Request bodies and messages into models, with errors a caller can act on."""

from __future__ import annotations

from typing import TypeVar

import pydantic

from .. import errors

Model = TypeVar("Model", bound=pydantic.BaseModel)


def parse_json(model: type[Model], raw: str | bytes) -> Model:
    try:
        return model.model_validate_json(raw or "")
    except pydantic.ValidationError as exc:
        raise _error(exc) from None


def validated(model: type[Model], data: object) -> Model:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _error(exc) from None


def _error(exc: pydantic.ValidationError) -> errors.ServiceError:
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return errors.InvalidJson()
    if any(not p["loc"] and p["type"] in ("model_type", "model_attributes_type") for p in problems):
        return errors.ValidationError("The request body must be a JSON object.")
    details = "; ".join(f"{'.'.join(str(part) for part in p['loc']) or 'body'}: {p['msg']}" for p in problems)
    return errors.ValidationError(f"Invalid request: {details}")
