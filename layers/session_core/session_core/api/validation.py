"""Request bodies and messages into their dataclasses (models.py), with errors a caller can act on."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import pydantic_core

from .. import errors

if TYPE_CHECKING:
    from ..models import RequestBody

Body = TypeVar("Body", bound="RequestBody")


def parse_json(model: type[Body], raw: str | bytes) -> Body:
    try:
        return model.from_json(raw or "")
    except pydantic_core.ValidationError as exc:
        raise _error(exc) from None


def validated(model: type[Body], data: object) -> Body:
    try:
        return model.from_data(data)
    except pydantic_core.ValidationError as exc:
        raise _error(exc) from None


def _error(exc: pydantic_core.ValidationError) -> errors.ServiceError:
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return errors.InvalidJson()
    if any(not p["loc"] and p["type"] in ("model_type", "model_attributes_type") for p in problems):
        return errors.ValidationError("The request body must be a JSON object.")
    details = "; ".join(f"{'.'.join(str(part) for part in p['loc']) or 'body'}: {p['msg']}" for p in problems)
    return errors.ValidationError(f"Invalid request: {details}")
