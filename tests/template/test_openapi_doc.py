"""docs/openapi.yaml is valid OpenAPI and describes what the template and the code do."""

from __future__ import annotations

import dataclasses
from typing import get_args

import pytest
import yaml
from openapi_spec_validator import validate
from session_core import domain, errors, models, session_ids  # on sys.path via pyproject's pythonpath

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# The codes an HTTP route can answer in the {"error": {...}} body. 401 carries API
# Gateway's {"message": "Unauthorized"} instead; WebSocket-only codes are not here.
HTTP_ERROR_CODES = {
    "VALIDATION_ERROR", "INVALID_JSON", "BODY_TOO_LARGE", "INVALID_SESSION_ID", "SESSION_NOT_FOUND",
    "FORBIDDEN", "SESSION_ENDED", "VERSION_CONFLICT", "SERVICE_UNAVAILABLE", "INTERNAL_ERROR",
    "IDEMPOTENCY_KEY_REUSED", "REQUEST_IN_PROGRESS", "SESSION_LIMIT_REACHED",
}


@pytest.fixture(scope="module")
def openapi(repo_root) -> dict:
    return yaml.safe_load((repo_root / "docs" / "openapi.yaml").read_text(encoding="utf-8"))


def operations(openapi: dict):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method, path, item, operation


def test_openapi_document_is_valid(openapi):
    assert openapi["openapi"] == "3.0.3"
    validate(openapi)


def test_openapi_operations_are_the_template_routes(openapi, http_events):
    documented = {(method.upper(), path) for method, path, _, _ in operations(openapi)}
    routed = {(event["Method"].upper(), event["Path"]) for _, event in http_events}
    assert documented == routed


def test_openapi_headers_pass_cors(openapi, template):
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    allowed = {h.lower() for h in cors["AllowHeaders"]}
    exposed = {h.lower() for h in cors["ExposeHeaders"]}
    for _, _, item, operation in operations(openapi):
        for parameter in item.get("parameters", []) + operation.get("parameters", []):
            if parameter.get("in") == "header":
                assert parameter["name"].lower() in allowed
        for response in operation["responses"].values():
            for header in response.get("headers", {}):
                assert header.lower() in exposed


def test_openapi_schemas_match_the_code(openapi):
    schemas = openapi["components"]["schemas"]
    assert tuple(schemas["Language"]["enum"]) == models.SUPPORTED_LANGUAGES
    assert tuple(schemas["QualityTier"]["enum"]) == get_args(models.QualityTier)
    assert tuple(schemas["SessionStatus"]["enum"]) == get_args(models.SessionStatus)
    # The session is a dataclass whose internal fields are marked; the request bodies are dataclasses too.
    session_fields = {field.name for field in dataclasses.fields(domain.Session) if field.metadata.get("api", True)}
    assert set(schemas["Session"]["properties"]) == session_fields
    for name in ("CreateSessionRequest", "UpdateSessionRequest"):
        assert set(schemas[name]["properties"]) == set(getattr(models, name).field_names()), name
    session_id = openapi["components"]["parameters"]["SessionId"]["schema"]["pattern"]
    assert session_id == session_ids.SESSION_ID_PATTERN.pattern


def test_openapi_partial_results_settings_are_the_code_s_ranges_and_defaults(openapi):
    schemas = openapi["components"]["schemas"]
    fields = {field.name: field for field in dataclasses.fields(models.CreateSessionRequest)}
    for name in ("PartialResultsEnabled", "MinStabilityThreshold", "MaxBufferTimeout"):
        field = fields[name[0].lower() + name[1:]]
        assert schemas[name]["default"] == field.default, name
        checked = field.metadata["schema"]  # the pydantic_core schema the value is checked against
        assert (schemas[name].get("minimum"), schemas[name].get("maximum")) == (checked.get("ge"), checked.get("le"))


def test_openapi_error_codes_are_the_http_error_codes(openapi):
    defined = {
        cls.code for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, errors.ServiceError)
    }
    assert HTTP_ERROR_CODES <= defined, f"not in session_core.errors: {HTTP_ERROR_CODES - defined}"
    documented = openapi["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert set(documented) == HTTP_ERROR_CODES
